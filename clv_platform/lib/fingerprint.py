"""Fingerprints of the raw daily partitions: what a model came from, and whether an incremental dbt run is still right.

Pure SQL over a DuckDB connection, no Dagster: the feature assets record these strings as metadata and
compare them on the next build; training records :func:`input_fingerprint` beside its examples' hash.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from clv_platform.ingest.profile import table_exists


class IncrementalSource(NamedTuple):
    """A raw table read by daily incremental models, and the model whose latest day sets where they rebuild."""

    raw_table: str
    day: str  # the raw row's day
    columns: str  # the raw columns the models read; provenance columns may change without the history changing
    model: str  # the first incremental model on it: its latest day is the latest of all its readers
    model_day: str
    metadata_key: str


INCREMENTAL_SOURCES = (
    IncrementalSource(
        "raw.transactions",
        "cast(invoice_date as date)",
        "invoice_no, stock_code, description, quantity, invoice_date, unit_price, customer_id, country",
        "intermediate.int_transaction_lines",
        "invoice_date",
        "incremental_boundary_date",
    ),
    IncrementalSource(
        "raw.behavioral_events",
        "cast(event_timestamp as date)",
        "event_id, session_id, customer_id, event_type, event_timestamp",
        "intermediate.int_customer_session_days",
        "activity_date",
        "events_incremental_boundary_date",
    ),
)
# The model that records the boundaries and fingerprints of the last build in its materialization metadata.
BOUNDARY_MODEL = "intermediate.int_customer_days"


def history_fingerprint(con, boundaries: Mapping[str, str | None]) -> str:
    """Row count and summed row hashes of each raw table's rows dated before its boundary.

    ``boundaries`` maps the metadata key of each incremental source to its boundary date (None when
    its model has no rows yet: then no row is before it).
    """
    parts = []
    for source in INCREMENTAL_SOURCES:
        boundary = boundaries[source.metadata_key]
        count, digest = con.execute(
            f"""select count(*), coalesce(sum(hash({source.columns})), 0) from {source.raw_table}
                where {source.day} < cast(? as date)""",
            [boundary],
        ).fetchone()
        parts.append(f"{source.raw_table}<{boundary}:{count}:{digest}")
    return "; ".join(parts)


def input_fingerprint(con, before: str) -> str:
    """The raw daily partitions read for days before ``before``: each table's day range, rows and summed row hash.

    What a model records as the data it came from beside the hash of its training examples: the same
    partitions give the same string, a corrected or added day changes it.
    """
    parts = []
    for source in INCREMENTAL_SOURCES:
        first, last, count, digest = con.execute(
            f"""select min({source.day}), max({source.day}), count(*), coalesce(sum(hash({source.columns})), 0)
                from {source.raw_table} where {source.day} < cast(? as date)""",
            [before],
        ).fetchone()
        parts.append(f"{source.raw_table} {first}..{last}: {count} rows, hash {digest}")
    return "; ".join(parts)


def incremental_state(con, lookback_days: int) -> dict:
    """Where the next incremental run starts rebuilding each source's days, and the fingerprint of the history before.

    A reader further downstream (int_customer_days after int_transaction_lines) may start earlier,
    from its own latest day; it then rebuilds from rows its upstream kept, which are correct as
    long as the raw rows before the upstream's boundary, the later one, are unchanged.
    """
    boundaries = {}
    for source in INCREMENTAL_SOURCES:
        (boundary,) = con.execute(
            f"select cast(max({source.model_day}) - interval {int(lookback_days)} day as date) from {source.model}"
        ).fetchone()
        boundaries[source.metadata_key] = None if boundary is None else str(boundary)
    return {**boundaries, "history_fingerprint": history_fingerprint(con, boundaries)}


def full_refresh_reason(con, recorded: Mapping[str, object], definitions: str) -> str | None:
    """Why the daily aggregates must be rebuilt from scratch, or None when an incremental run is right.

    ``recorded`` is the metadata the last build stored on :data:`BOUNDARY_MODEL` (its boundaries and
    fingerprints; empty when there was none), ``definitions`` this build's definition fingerprint.
    An incremental run rebuilds only the days from the recorded boundaries; that is correct only while
    the raw rows before them are the ones that build saw. A reload that rewrote history (another
    dataset, corrected old lines or events) changes their fingerprint; a new version of the models (or
    of what they read and call) changes the definitions' fingerprint.
    """
    if any(source.metadata_key not in recorded for source in INCREMENTAL_SOURCES):
        return "no earlier build recorded its incremental boundaries"
    if recorded.get("definition_fingerprint") != definitions:
        return "the definitions of the daily aggregates or of their inputs changed since the last build"
    boundaries = {source.metadata_key: recorded[source.metadata_key] for source in INCREMENTAL_SOURCES}
    for table in (BOUNDARY_MODEL, *(source.model for source in INCREMENTAL_SOURCES)):
        if not table_exists(con, table):
            return f"{table} does not exist"
    now = history_fingerprint(con, boundaries).split("; ")
    before = str(recorded["history_fingerprint"]).split("; ")
    changed = [
        f"{source.raw_table} dated before {boundaries[source.metadata_key]}"
        for source, current, recorded_part in zip(INCREMENTAL_SOURCES, now, before + [""] * len(now), strict=False)
        if current != recorded_part
    ]
    if changed:
        return f"raw rows changed since the last build: {', '.join(changed)}"
    return None
