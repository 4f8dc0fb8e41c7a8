"""What one evaluation of the ladder decided, as a typed record stored in the warehouse.

``ml/model_evaluation`` writes one :class:`EvaluationOutcome` per run to ``ml.model_evaluations``;
``ml/challenger``, ``ml/champion``, the CLI summary and ``clv-platform evaluate`` read it back from there
(:func:`load_outcome`), never from a materialization's metadata, which is for people. ``ml/champion``
records each decision it applied in ``ml.champion_history``, the one history of the alias: manual
promotions and rollbacks (:mod:`clv_platform.ml.lifecycle`) land there too.

A decision is judged against one champion: :meth:`EvaluationOutcome.stale_reason` says when the champion
alias has moved since, so an old decision is never applied to a new champion.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from clv_platform.ml.gates import ChampionDecision, GateVerdict

EVALUATIONS_TABLE = "ml.model_evaluations"
CHAMPION_HISTORY_TABLE = "ml.champion_history"
# The metrics the champion is summarised by, in this order.
CHAMPION_METRICS: tuple[str, ...] = ("mae", "spearman", "normalized_gini", "fairness_ratio")

_EVALUATIONS_DDL = f"""
create table if not exists {EVALUATIONS_TABLE} (
    evaluation_id varchar primary key,
    evaluated_at timestamp not null,
    model_name varchar not null,
    versions varchar not null,
    candidate varchar,
    no_candidate_reason varchar not null,
    gate_verdict varchar,
    action varchar not null,
    decided_model varchar not null,
    decision_reason varchar not null,
    baseline_serves boolean not null,
    champion_version_before varchar,
    champion_metrics_before varchar,
    evaluation_cutoff date not null,
    train_cutoffs varchar not null,
    horizon_days integer not null,
    train_rows bigint not null,
    evaluation_rows bigint not null,
    data_version varchar not null,
    input_partitions varchar not null,
    code_version varchar not null,
    actual_fairness_ratio double,
    fairness_relative_to_actual boolean not null,
    metrics blob not null,
    fairness blob not null
)
"""

_CHAMPION_HISTORY_DDL = f"""
create table if not exists {CHAMPION_HISTORY_TABLE} (
    applied_at timestamp not null,
    evaluation_id varchar,
    model_name varchar not null,
    champion_version varchar not null,
    champion_rung varchar not null,
    action varchar not null,
    reason varchar not null,
    baseline_serves boolean not null,
    {", ".join(f"{name} double" for name in CHAMPION_METRICS)},
    alias varchar,
    from_version varchar,
    who varchar,
    how varchar
)
"""
# Columns added since the table was first written: a warehouse of an older release gains them, NULL on old rows
# (read back as gate decisions, which is all ml/champion wrote then). A manual move has no evaluation.
_CHAMPION_HISTORY_MIGRATION = (
    f"alter table {CHAMPION_HISTORY_TABLE} alter column evaluation_id drop not null",
    *(
        f"alter table {CHAMPION_HISTORY_TABLE} add column if not exists {name} varchar"
        for name in ("alias", "from_version", "who", "how")
    ),
)
# The aliases whose moves the history records: the champion scores; the challenger is the model judged beside it.
CHAMPION, CHALLENGER = "champion", "challenger"
# How an alias moved: the gates' decision applied by ml/champion, or a person; or the rollout changed.
GATE_DECISION, MANUAL_PROMOTE, ROLLBACK, ROLLOUT = "gate decision", "manual promote", "rollback", "rollout"


@dataclass(frozen=True, eq=False)
class EvaluationOutcome:
    """One evaluation of the ladder: the registered versions, the gates' verdict and the champion decision.

    Attributes
    ----------
    evaluation_id, evaluated_at
        Who made the decision and when (``evaluated_at`` in UTC, ISO format).
    model_name, versions
        The registered model and rung -> the version registered for it in this evaluation.
    candidate, no_candidate_reason
        The supervised candidate, or ``None`` and why there is none.
    gate_verdict
        The gates' verdict on the candidate (``None`` without a candidate).
    champion_decision
        Which model holds the ``champion`` alias after this evaluation.
    champion_version_before, champion_metrics_before
        The champion the decision was made against (``None`` before the first one) and its gate metrics
        on this evaluation window.
    evaluation_cutoff, train_cutoffs, horizon_days, train_rows, evaluation_rows
        The window every rung was fitted and judged on.
    data_version, input_partitions, code_version
        Lineage of the examples and the code.
    metrics, fairness
        One row per model (index ``model``): the metrics table and the disparate-impact ratios.
    actual_fairness_ratio, fairness_relative_to_actual
        The actual revenue's own ratio, and whether the fairness gate reads ratios relative to it.
    """

    evaluation_id: str
    evaluated_at: str
    model_name: str
    versions: Mapping[str, str]
    candidate: str | None
    no_candidate_reason: str
    gate_verdict: GateVerdict | None
    champion_decision: ChampionDecision
    champion_version_before: str | None
    champion_metrics_before: Mapping[str, float] | None
    evaluation_cutoff: str
    train_cutoffs: tuple[str, ...]
    horizon_days: int
    train_rows: int
    evaluation_rows: int
    data_version: str
    input_partitions: str
    code_version: str
    metrics: pd.DataFrame
    fairness: pd.DataFrame
    actual_fairness_ratio: float
    fairness_relative_to_actual: bool

    @property
    def target_version(self) -> str | None:
        """The version the ``champion`` alias holds once the decision is applied."""
        if self.champion_decision.action == "keep":
            return self.champion_version_before
        return self.versions[self.champion_decision.model]

    def stale_reason(self, champion_now: str | None, set_by_hand: ChampionRecord | None = None) -> str | None:
        """Why this decision must not be applied with ``champion_now`` holding the alias, or ``None``.

        The decision compared its candidate with ``champion_version_before``; it still holds while that
        version, or the one the decision names, is the champion, and nobody has moved the alias by hand
        since (``set_by_hand``: the latest manual move after this evaluation). A rollback to the version the
        decision was judged against must not be undone by applying that decision again.

        Examples
        --------
        >>> decision = ChampionDecision("promote", "xgboost", "xgboost passed every gate and is promoted", False)
        >>> outcome = EvaluationOutcome("e1", "2026-01-05T00:00:00", "clv_model", {"xgboost": "7"}, "xgboost", "", None,
        ...     decision, "3", None, "2025-06-30", (), 365, 0, 0, "d", "", "c", pd.DataFrame(), pd.DataFrame(), 1.0, True)
        >>> outcome.stale_reason("3") is None and outcome.stale_reason("7") is None
        True
        >>> outcome.stale_reason("5")
        'evaluation e1 decided against champion v3, but the champion is now v5: materialize ml/model_evaluation again'
        >>> by_hand = ChampionRecord("2026-01-06T09:00:00", None, "clv_model", "3", "btyd", "rollback", "bad week", False, {},
        ...     from_version="7", who="ana", how="rollback")
        >>> print(outcome.stale_reason("3", by_hand))  # doctest: +NORMALIZE_WHITESPACE
        the champion was set by hand after evaluation e1 (rollback to v3 by ana at 2026-01-06T09:00:00: bad week):
        materialize ml/model_evaluation again
        """
        if set_by_hand is not None:
            return (
                f"the champion was set by hand after evaluation {self.evaluation_id} ({set_by_hand.how} to "
                f"v{set_by_hand.champion_version} by {set_by_hand.who} at {set_by_hand.applied_at}: {set_by_hand.reason}): "
                "materialize ml/model_evaluation again"
            )
        if champion_now in {self.champion_version_before, self.target_version}:
            return None
        before = f"v{self.champion_version_before}" if self.champion_version_before else "no champion"
        now = f"v{champion_now}" if champion_now else "none"
        return (
            f"evaluation {self.evaluation_id} decided against champion {before}, but the champion is now {now}: "
            "materialize ml/model_evaluation again"
        )

    def metrics_table(self) -> pd.DataFrame:
        """The metrics, one row per model with the model's name as the first column ``model``."""
        return self.metrics.rename_axis("model").reset_index()

    def fairness_table(self) -> pd.DataFrame:
        """The disparate-impact ratios, one row per model with its name as the first column ``model``."""
        return self.fairness.rename_axis("model").reset_index()

    def champion_metrics(self) -> dict[str, float]:
        """The new champion's gate metrics on this evaluation window (the kept champion's when it stays)."""
        if self.champion_decision.action == "keep":
            return {key: float((self.champion_metrics_before or {}).get(key, math.nan)) for key in CHAMPION_METRICS}
        row = self.metrics.loc[self.champion_decision.model]
        return {key: float(row[key]) for key in CHAMPION_METRICS}


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


def _json(value) -> str | None:
    return None if value is None else json.dumps(value)


def save_outcome(con, outcome: EvaluationOutcome) -> None:
    """Append ``outcome`` to ``ml.model_evaluations`` (created if missing); the frames keep their exact dtypes."""
    con.execute("create schema if not exists ml")
    con.execute(_EVALUATIONS_DDL)
    decision = outcome.champion_decision
    row = {
        "evaluation_id": outcome.evaluation_id,
        "evaluated_at": outcome.evaluated_at,
        "model_name": outcome.model_name,
        "versions": json.dumps(dict(outcome.versions)),
        "candidate": outcome.candidate,
        "no_candidate_reason": outcome.no_candidate_reason,
        "gate_verdict": _json({name: list(gate) for name, gate in outcome.gate_verdict.gates.items()})
        if outcome.gate_verdict
        else None,
        "action": decision.action,
        "decided_model": decision.model,
        "decision_reason": decision.reason,
        "baseline_serves": decision.baseline_serves,
        "champion_version_before": outcome.champion_version_before,
        "champion_metrics_before": _json(dict(outcome.champion_metrics_before) if outcome.champion_metrics_before else None),
        "evaluation_cutoff": outcome.evaluation_cutoff,
        "train_cutoffs": json.dumps(list(outcome.train_cutoffs)),
        "horizon_days": outcome.horizon_days,
        "train_rows": outcome.train_rows,
        "evaluation_rows": outcome.evaluation_rows,
        "data_version": outcome.data_version,
        "input_partitions": outcome.input_partitions,
        "code_version": outcome.code_version,
        "actual_fairness_ratio": outcome.actual_fairness_ratio,
        "fairness_relative_to_actual": outcome.fairness_relative_to_actual,
        "metrics": _parquet(outcome.metrics),
        "fairness": _parquet(outcome.fairness),
    }
    columns = ", ".join(row)
    con.execute(f"insert into {EVALUATIONS_TABLE} ({columns}) values ({', '.join('?' for _ in row)})", list(row.values()))


def load_outcome(con, evaluation_id: str | None = None) -> EvaluationOutcome:
    """The stored outcome of ``evaluation_id`` (default: the latest evaluated); ``LookupError`` when there is none."""
    where, params = ("where evaluation_id = ?", [evaluation_id]) if evaluation_id else ("", [])
    try:
        cursor = con.execute(f"select * from {EVALUATIONS_TABLE} {where} order by evaluated_at desc limit 1", params)
    except Exception as error:  # duckdb.CatalogException, without importing duckdb here
        if "does not exist" in str(error):
            raise LookupError(f"{EVALUATIONS_TABLE} does not exist: materialize ml/model_evaluation first") from None
        raise
    names = [d[0] for d in cursor.description]
    found = cursor.fetchone()
    if found is None:
        which = f"evaluation {evaluation_id}" if evaluation_id else "any evaluation"
        raise LookupError(f"{EVALUATIONS_TABLE} holds no row of {which}: materialize ml/model_evaluation first")
    row = dict(zip(names, found, strict=True))
    gates = json.loads(row["gate_verdict"]) if row["gate_verdict"] else None
    return EvaluationOutcome(
        evaluation_id=row["evaluation_id"],
        evaluated_at=pd.Timestamp(row["evaluated_at"]).isoformat(),
        model_name=row["model_name"],
        versions=json.loads(row["versions"]),
        candidate=row["candidate"],
        no_candidate_reason=row["no_candidate_reason"],
        gate_verdict=GateVerdict(
            passed=all(ok for ok, _ in gates.values()), gates={name: (ok, why) for name, (ok, why) in gates.items()}
        )
        if gates is not None
        else None,
        champion_decision=ChampionDecision(
            row["action"], row["decided_model"], row["decision_reason"], bool(row["baseline_serves"])
        ),
        champion_version_before=row["champion_version_before"],
        champion_metrics_before=json.loads(row["champion_metrics_before"]) if row["champion_metrics_before"] else None,
        evaluation_cutoff=str(row["evaluation_cutoff"]),
        train_cutoffs=tuple(json.loads(row["train_cutoffs"])),
        horizon_days=int(row["horizon_days"]),
        train_rows=int(row["train_rows"]),
        evaluation_rows=int(row["evaluation_rows"]),
        data_version=row["data_version"],
        input_partitions=row["input_partitions"],
        code_version=row["code_version"],
        metrics=pd.read_parquet(io.BytesIO(row["metrics"])),
        fairness=pd.read_parquet(io.BytesIO(row["fairness"])),
        actual_fairness_ratio=float("nan") if row["actual_fairness_ratio"] is None else float(row["actual_fairness_ratio"]),
        fairness_relative_to_actual=bool(row["fairness_relative_to_actual"]),
    )


@dataclass(frozen=True)
class ChampionRecord:
    """One move (or keep) of an alias: which version it names now, from which, who moved it, how and why.

    ``alias`` is :data:`CHAMPION` (the version that scores) or :data:`CHALLENGER` (the model judged beside it;
    ``champion_version`` is then the version the challenger alias names, ``""`` once removed). ``how`` is
    :data:`GATE_DECISION` (``evaluation_id`` names the evaluation whose decision an alias asset applied),
    :data:`MANUAL_PROMOTE` or :data:`ROLLBACK` (no evaluation; ``metrics`` are NaN). A kept champion is
    recorded too, with ``from_version == champion_version``.
    """

    applied_at: str
    evaluation_id: str | None
    model_name: str
    champion_version: str
    champion_rung: str
    action: str
    reason: str
    baseline_serves: bool
    metrics: Mapping[str, float]
    from_version: str | None = None
    who: str = ""
    how: str = GATE_DECISION
    alias: str = CHAMPION

    @property
    def moved(self) -> bool:
        """Whether the alias changed hands (a kept champion did not)."""
        return self.from_version != self.champion_version


def _ensure_history(con) -> None:
    con.execute("create schema if not exists ml")
    con.execute(_CHAMPION_HISTORY_DDL)
    for statement in _CHAMPION_HISTORY_MIGRATION:
        con.execute(statement)


def save_champion(con, record: ChampionRecord) -> None:
    """Append ``record`` to ``ml.champion_history`` (created, or given the newer columns, if needed)."""
    _ensure_history(con)
    row = {
        "applied_at": record.applied_at,
        "evaluation_id": record.evaluation_id,
        "model_name": record.model_name,
        "champion_version": record.champion_version,
        "champion_rung": record.champion_rung,
        "action": record.action,
        "reason": record.reason,
        "baseline_serves": record.baseline_serves,
        **{name: record.metrics.get(name) for name in CHAMPION_METRICS},
        "alias": record.alias,
        "from_version": record.from_version,
        "who": record.who,
        "how": record.how,
    }
    columns = ", ".join(row)
    con.execute(f"insert into {CHAMPION_HISTORY_TABLE} ({columns}) values ({', '.join('?' for _ in row)})", list(row.values()))


def _record(row: dict) -> ChampionRecord:
    return ChampionRecord(
        applied_at=pd.Timestamp(row["applied_at"]).isoformat(),
        evaluation_id=row["evaluation_id"],
        model_name=row["model_name"],
        champion_version=row["champion_version"],
        champion_rung=row["champion_rung"],
        action=row["action"],
        reason=row["reason"],
        baseline_serves=bool(row["baseline_serves"]),
        metrics={name: math.nan if row[name] is None else float(row[name]) for name in CHAMPION_METRICS},
        from_version=row.get("from_version"),
        who=row.get("who") or "",
        how=row.get("how") or GATE_DECISION,
        alias=row.get("alias") or CHAMPION,
    )


def load_history(con, model_name: str | None = None) -> list[ChampionRecord]:
    """Every record of ``ml.champion_history`` (of ``model_name`` if given), oldest first; empty if there is none."""
    try:
        cursor = con.execute(f"select * from {CHAMPION_HISTORY_TABLE} order by applied_at")
    except Exception as error:  # duckdb.CatalogException, without importing duckdb here
        if "does not exist" in str(error):
            return []
        raise
    names = [d[0] for d in cursor.description]
    records = [_record(dict(zip(names, found, strict=True))) for found in cursor.fetchall()]
    return [r for r in records if model_name is None or r.model_name == model_name]


def load_champion(con) -> ChampionRecord:
    """The latest decision applied to the champion alias; ``LookupError`` when none was."""
    try:
        cursor = con.execute(f"select * from {CHAMPION_HISTORY_TABLE} order by applied_at desc")
    except Exception as error:
        if "does not exist" in str(error):
            raise LookupError(f"{CHAMPION_HISTORY_TABLE} does not exist: materialize ml/champion first") from None
        raise
    names = [d[0] for d in cursor.description]
    # Newest first; the challenger's moves share the table (a warehouse of an older release has no alias column).
    while (found := cursor.fetchone()) is not None:
        record = _record(dict(zip(names, found, strict=True)))
        if record.alias == CHAMPION:
            return record
    raise LookupError(f"{CHAMPION_HISTORY_TABLE} holds no move of the champion: materialize ml/champion first")
