"""One row per batch an output asset wrote: what it covered and how, read by the steps after it.

``scoring/clv_scores`` records each scoring in ``scoring.score_batches`` (the cutoff it scored, the activity
window, the model version); value tiers, explanations and the drift report read the cutoff and the window
from there. ``scoring/clv_explanations`` and ``monitoring/drift_report`` record theirs likewise, so the CLI
summary reads tables, not materialization metadata.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

import pandas as pd

SCORE_BATCHES_TABLE = "scoring.score_batches"
EXPLANATION_BATCHES_TABLE = "scoring.explanation_batches"
DRIFT_REPORTS_TABLE = "monitoring.drift_reports"


@dataclass(frozen=True)
class ScoreBatch:
    """One scoring of ``scoring.clv_scores``: the cutoff scored, who was active, which version scored.

    ``model_version`` is the champion's. Under a canary or A/B rollout ``challenger_version`` scored the
    customers of the challenger arm (``challenger_customers`` of them); the rollout's mode, share and salt
    say who they are. Without a challenger distinct from the champion, the version is empty and every row
    is the champion's.
    """

    cutoff_date: str
    scored_at: str
    active_within_days: int
    model_name: str
    model_version: str
    model_rung: str
    customers_scored: int
    rollout_mode: str = "none"
    rollout_share: float = 0.0
    rollout_salt: str = ""
    challenger_version: str = ""
    challenger_customers: int = 0


@dataclass(frozen=True)
class ExplanationBatch:
    """One explanation run of ``scoring.clv_explanations``."""

    cutoff_date: str
    explained_at: str
    model_name: str
    model_version: str
    model_rung: str
    method: str
    top_drivers: int
    customers_explained: int
    explain_seconds: float


@dataclass(frozen=True)
class DriftReport:
    """One drift report: the cutoff compared, the prediction's PSI, the drifted columns (a JSON list) and the HTML file."""

    cutoff_date: str
    reported_at: str
    model_version: str
    active_within_days: int
    prediction_psi: float
    drifted_columns: str
    psi_threshold: float
    report_path: str

    @property
    def drifted(self) -> list[str]:
        return json.loads(self.drifted_columns)


_TIME_COLUMN = {ScoreBatch: "scored_at", ExplanationBatch: "explained_at", DriftReport: "reported_at"}


def append(con, table: str, record) -> None:
    """Append ``record`` (one of this module's dataclasses) to ``table``, created from its fields if missing.

    Examples
    --------
    >>> import duckdb
    >>> con = duckdb.connect()
    >>> append(con, SCORE_BATCHES_TABLE, ScoreBatch("2025-06-30", "2025-07-01T04:00:00", 365, "clv_model", "3", "btyd", 1200))
    >>> append(con, SCORE_BATCHES_TABLE, ScoreBatch("2025-03-31", "2025-07-02T04:00:00", 90, "clv_model", "3", "btyd", 800))
    >>> latest(con, SCORE_BATCHES_TABLE, ScoreBatch).cutoff_date, latest(con, SCORE_BATCHES_TABLE, ScoreBatch).active_within_days
    ('2025-03-31', 90)
    """
    schema, _ = table.split(".")
    row = pd.DataFrame([asdict(record)])
    row[_TIME_COLUMN[type(record)]] = pd.to_datetime(row[_TIME_COLUMN[type(record)]])
    row["cutoff_date"] = pd.to_datetime(row["cutoff_date"]).dt.date
    con.execute(f"create schema if not exists {schema}")
    con.register("_batch_row", row)
    try:
        con.execute(f"create table if not exists {table} as select * from _batch_row limit 0")
        # A table of an older release gains the fields added since (null on its rows).
        stored = {found[0] for found in con.execute(f"describe {table}").fetchall()}
        for name, kind, *_ in con.execute("describe _batch_row").fetchall():
            if name not in stored:
                con.execute(f'alter table {table} add column "{name}" {kind}')
        con.execute(f"insert into {table} by name select * from _batch_row")
    finally:
        con.unregister("_batch_row")


def _defaults(kind: type) -> set[str]:
    from dataclasses import MISSING

    return {f.name for f in fields(kind) if f.default is not MISSING}


def latest(con, table: str, kind: type):
    """The latest record of ``table`` as a ``kind``; ``LookupError`` naming the table when there is none."""
    time_column = _TIME_COLUMN[kind]
    try:
        cursor = con.execute(f"select * from {table} order by {time_column} desc limit 1")
    except Exception as error:  # duckdb.CatalogException, without importing duckdb here
        if "does not exist" in str(error):
            raise LookupError(f"table {table} does not exist") from None
        raise
    names = [d[0] for d in cursor.description]
    found = cursor.fetchone()
    if found is None:
        raise LookupError(f"table {table} has no rows")
    # A field the table does not hold yet (an older release wrote it), or null on an older row, takes its default.
    row = dict(zip(names, found, strict=True))
    values = {f.name: row[f.name] for f in fields(kind) if row.get(f.name) is not None or f.name not in _defaults(kind)}
    values["cutoff_date"] = str(pd.Timestamp(values["cutoff_date"]).date())
    values[time_column] = pd.Timestamp(values[time_column]).isoformat()
    return kind(**values)
