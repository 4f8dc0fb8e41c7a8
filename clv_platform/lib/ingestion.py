"""Dagster-aware ingestion plumbing: the source resource, the daily partitions, partition-safe writes."""

from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import date, datetime

import dagster as dg
import pandas as pd
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from clv_platform.ingest.spec import SOURCE_CONFIG_ENV, IngestionSpec, load_spec


def history_start() -> str:
    """First day of the daily partitions, from the source spec (read once at definitions load).

    A spec that cannot be read must not break the code location (the UI, the daemon and every job load
    it): the default start stands, and the ingestion steps report the spec's error when they run.
    """
    try:
        return load_spec().history_start.isoformat()
    except (OSError, ValueError):
        return IngestionSpec.model_fields["history_start"].default.isoformat()


# Event-date partitions; today's partition exists (end_offset=1) so a landing file of today loads today.
DAILY_PARTITIONS = dg.DailyPartitionsDefinition(start_date=history_start(), end_offset=1, fmt="%Y-%m-%d")


def partition_range_tags(first: date | str, last: date | str) -> dict[str, str]:
    """Run tags that materialize every daily partition from ``first`` to ``last`` in one run."""
    return {ASSET_PARTITION_RANGE_START_TAG: str(first)[:10], ASSET_PARTITION_RANGE_END_TAG: str(last)[:10]}


class RawSource(dg.ConfigurableResource):
    """Where raw data comes from: the YAML spec named by ``CLV_SOURCE_CONFIG`` (the generator when unset)."""

    spec_path: str = ""

    def spec(self) -> IngestionSpec:
        return load_spec(self.spec_path or os.environ.get(SOURCE_CONFIG_ENV) or None)

    def pii_key(self) -> bytes | None:
        spec = self.spec()
        value = os.environ.get(spec.pii.key_env)
        return value.encode() if value else None


def window_of(context: dg.AssetExecutionContext) -> tuple[datetime, datetime]:
    """The run's event-time window ``[start, end)`` as naive datetimes (the log's own clock)."""
    window = context.partition_time_window
    return window.start.replace(tzinfo=None), window.end.replace(tzinfo=None)


_PROVENANCE = {"_source": "varchar", "_source_row": "bigint", "_loaded_at": "timestamp"}
_QUARANTINE = {
    "source": "varchar", "source_row": "bigint", "partition_date": "date", "rule": "varchar", "column_name": "varchar",
    "value": "varchar", "message": "varchar", "rules": "varchar", "record": "varchar", "loaded_at": "timestamp",
}
# Column types of the partitioned raw tables (pandas cannot type an all-NULL column).
RAW_TABLES = {
    "raw.transactions": {
        "invoice_no": "varchar", "stock_code": "varchar", "description": "varchar", "quantity": "bigint",
        "invoice_date": "timestamp", "unit_price": "double", "customer_id": "varchar", "country": "varchar", **_PROVENANCE,
    },
    "raw.behavioral_events": {
        "event_id": "varchar", "session_id": "varchar", "customer_id": "varchar", "event_type": "varchar",
        "event_timestamp": "timestamp", **_PROVENANCE,
    },
    "raw.transactions_quarantine": _QUARANTINE,
    "raw.behavioral_events_quarantine": _QUARANTINE,
}


def ensure_table(con, table: str) -> None:
    """Create ``table`` with its declared columns when absent; add the ones an older state dir lacks."""
    schema, name = table.split(".")
    columns = RAW_TABLES[table]
    con.execute(f"create schema if not exists {schema}")
    con.execute(f"create table if not exists {table} ({', '.join(f'{c} {t}' for c, t in columns.items())})")
    existing = {r[0] for r in con.execute(
        "select column_name from information_schema.columns where table_schema = ? and table_name = ?", [schema, name]
    ).fetchall()}
    for column, kind in columns.items():
        if column not in existing:
            con.execute(f"alter table {table} add column {column} {kind}")


STAGING_SCHEMA = "raw_staging"


@contextmanager
def transaction(con):
    """One DuckDB transaction: committed when the body ends, rolled back if it raises."""
    con.execute("begin transaction")
    try:
        yield
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")


def staged_name(table: str) -> str:
    """Where a load's new version of ``table`` waits for its checks: ``raw.transactions`` -> ``raw_staging.transactions``."""
    return f"{STAGING_SCHEMA}.{table.split('.')[-1]}"


def stage(con, table: str, frame: pd.DataFrame, append: bool = False) -> str:
    """Write ``frame`` to the staging table of ``table`` (typed as ``table``), replacing or appending; its name.

    Staged rows are outside the published tables: checks judge them there, and a version that fails
    a check stays there for inspection while the published one is untouched.
    """
    staged = staged_name(table)
    columns = RAW_TABLES[table]
    con.execute(f"create schema if not exists {STAGING_SCHEMA}")
    if not append:
        con.execute(f"create or replace table {staged} ({', '.join(f'{c} {t}' for c, t in columns.items())})")
    con.register("_rows_to_stage", frame)
    try:
        casts = ", ".join(f"cast({c} as {t}) as {c}" for c, t in columns.items())
        con.execute(f"insert into {staged} by name select {casts} from _rows_to_stage")
    finally:
        con.unregister("_rows_to_stage")
    return staged


def discard_staged(con, tables: list[str]) -> None:
    """Drop the staging tables of ``tables`` (a load that could not be read has nothing to inspect)."""
    for table in tables:
        con.execute(f"drop table if exists {staged_name(table)}")


def replace_window(con, writes: list[tuple[str, str, str]], sources: list[str]) -> None:
    """Publish staged rows: for every (table, staged table, SQL predicate selecting the old rows) of ``writes``,
    delete the old rows and insert the staged ones, all in one transaction; the staged tables are dropped with it.

    A run killed half-way leaves the previous state, a rerun completes it.
    ``sources`` is bound as ``$sources`` for predicates that select quarantine rows by source.
    """
    for table, _, _ in writes:
        ensure_table(con, table)
    with transaction(con):
        for table, staged, predicate in writes:
            params = {"sources": sources} if "$sources" in predicate else {}
            con.execute(f"delete from {table} where {predicate}", params)
            con.execute(f"insert into {table} by name select * from {staged}")
            con.execute(f"drop table {staged}")


def publish_table(con, table: str, staged: str) -> int:
    """Replace ``table`` by the staged table ``staged`` in one transaction (which drops it); the rows published."""
    con.execute(f"create schema if not exists {table.split('.')[0]}")  # the first load of a fresh warehouse
    with transaction(con):
        con.execute(f"create or replace table {table} as select * from {staged}")
        con.execute(f"drop table {staged}")
    return con.execute(f"select count(*) from {table}").fetchone()[0]


def source_date_range(spec: IngestionSpec, generator_options=None, s3_client=None) -> tuple[date, date]:
    """First and last event day in the transaction source: the partitions a full load must cover."""
    from clv_platform.ingest.readers import iter_source
    from clv_platform.ingest.validate import (
        TRANSACTIONS, check_columns, event_day_range, event_timestamps, timestamp_column, unparsed_timestamp_hint,
    )

    source = spec.transactions
    if source.kind == "generator":
        from clv_platform.defs.ingestion.assets import generated

        stamps = generated(generator_options or spec.generator).transactions["InvoiceDate"]
    else:
        column = timestamp_column(source, TRANSACTIONS)
        parts, hint = [], None
        for frame in iter_source(source, column, s3_client=s3_client, max_file_bytes=spec.limits.max_file_bytes):
            frame = check_columns(frame, source, TRANSACTIONS, bool(spec.pii.columns))  # the one-line error a run would give
            parts.append(event_timestamps(frame, source, TRANSACTIONS))
            if hint is None and len(parts[-1]) * 2 < len(frame):  # most timestamps did not parse: say what might
                hint = unparsed_timestamp_hint(frame, source, TRANSACTIONS)
        stamps = pd.concat(parts) if parts else pd.Series(dtype="datetime64[ns]")
    days = event_day_range(stamps, spec.history_start, datetime.now())
    if days is None:
        raise ValueError("the transaction source holds no rows with a valid timestamp" + (f": {hint}" if hint else ""))
    return days
