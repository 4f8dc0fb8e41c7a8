"""One raw table's load of a window of days, write-audit-publish, without Dagster.

The source is read chunk by chunk, validated, and its rows of the window staged in ``raw_staging``; the
table rules judge the staged version against the published history; only if every one passes are exactly
those days (with their quarantine rows, and those of the sources read) replaced, in one DuckDB transaction.
The asset turns the :class:`WindowLoad` into checks, materializations and the failure a user reads.
pandera (with its optional pyspark probing) is imported in function bodies: definitions load fast.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from clv_platform.ingest import table_rules
from clv_platform.ingest.readers import SourceError, SourceFrame, iter_source
from clv_platform.ingest.spec import IngestionSpec, SourceSpec
from clv_platform.lib.ingestion import discard_staged, replace_window, stage, staged_name


def _chunks(
    source: SourceSpec,
    contract,
    builtin_table: pd.DataFrame | None,
    s3_client: Callable[[], Any],
    start: datetime,
    end: datetime,
    max_file_bytes: int,
) -> Iterator[SourceFrame]:
    if source.kind == "generator":
        import numpy as np

        return iter([SourceFrame("generator", builtin_table, np.arange(1, len(builtin_table) + 1))])
    from clv_platform.ingest.validate import timestamp_column

    ts_column = timestamp_column(source, contract)
    client = s3_client() if source.kind == "s3" else None
    return iter_source(source, ts_column, start, end, s3_client=client, max_file_bytes=max_file_bytes)


def _generator_spec(contract) -> SourceSpec:
    return (
        SourceSpec(kind="generator", preset="online_retail") if contract.name == "transactions" else SourceSpec(kind="generator")
    )


def _split_window(validated, contract, start: datetime, end: datetime):
    ts = validated.accepted[contract.timestamp]
    accepted = validated.accepted[(ts >= start) & (ts < end)].reset_index(drop=True)
    q = validated.quarantine
    dated = q["partition_date"]
    quarantine = q[dated.isna() | ((dated >= start) & (dated < end))].reset_index(drop=True)
    outside = validated.rows_read - len(accepted) - len(quarantine)
    return accepted, quarantine, outside


@dataclass
class StagedLoad:
    """What a load staged, summed over the chunks it was read in."""

    rows_read: int = 0
    outside: int = 0
    accepted: int = 0
    quarantined: int = 0
    chunks: int = 0
    rows_by_source: dict = field(default_factory=dict)
    extra_columns: dict = field(default_factory=dict)
    empty_sources: list = field(default_factory=list)
    by_rule: Counter = field(default_factory=Counter)
    examples: pd.DataFrame | None = None  # the first quarantined rows, with their messages
    cleaning: pd.DataFrame | None = None

    def add(self, validated, accepted: pd.DataFrame, quarantine: pd.DataFrame, outside: int, cleaning) -> None:
        self.rows_read += validated.rows_read
        self.outside += outside
        self.accepted += len(accepted)
        self.quarantined += len(quarantine)
        self.chunks += 1
        for name, rows in validated.rows_by_source.items():
            self.rows_by_source[name] = self.rows_by_source.get(name, 0) + rows
        self.extra_columns.update(validated.extra_columns)
        self.empty_sources += [s for s in validated.empty_sources if s not in self.empty_sources]
        self.by_rule.update(quarantine["rule"].tolist())
        if len(quarantine) and (self.examples is None or len(self.examples) < 10):
            first = quarantine.head(10)
            self.examples = pd.concat([self.examples, first]).head(10) if self.examples is not None else first
        if cleaning is not None:
            if self.cleaning is None:
                self.cleaning = cleaning
            else:  # the counted rules (lines, value) add up; the others are descriptions
                counted = self.cleaning["lines"].notna()
                for column in ("lines", "value"):
                    self.cleaning.loc[counted, column] = self.cleaning.loc[counted, column] + cleaning.loc[counted, column]


def stage_chunks(
    con,
    chunks: Iterable[SourceFrame],
    contract,
    source_spec: SourceSpec,
    spec: IngestionSpec,
    pii_key: bytes | None,
    loaded_at: datetime,
    start: datetime,
    end: datetime,
) -> tuple[StagedLoad, str, str]:
    """Validate the source chunk by chunk and append each chunk's rows of ``[start, end)`` to the staging tables.

    Only one chunk is in memory at a time; duplicates across chunks are found as in one pass.
    """
    from clv_platform import schemas
    from clv_platform.ingest.cleaning import cleaning_summary
    from clv_platform.ingest.validate import TRANSACTIONS, SeenRows, validate

    table = f"raw.{contract.name}"
    contract_schema = schemas.transactions_schema if contract is TRANSACTIONS else schemas.behavioral_events_schema
    seen, staged = SeenRows(), StagedLoad()

    def one(frames: list[SourceFrame]) -> None:
        validated = validate(frames, contract, source_spec, spec.limits, spec.pii, pii_key, loaded_at, spec.first_day, seen)
        accepted, quarantine, outside = _split_window(validated, contract, start, end)
        accepted = contract_schema.validate(accepted)
        stage(con, table, accepted, append=bool(staged.chunks))
        stage(con, f"{table}_quarantine", quarantine, append=bool(staged.chunks))
        staged.add(validated, accepted, quarantine, outside, cleaning_summary(accepted) if contract is TRANSACTIONS else None)

    for chunk in chunks:
        one([chunk])
    if not staged.chunks:  # nothing read: empty staging tables all the same
        one([])
    return staged, staged_name(table), staged_name(f"{table}_quarantine")


@dataclass
class WindowLoad:
    """What loading one raw table's window did: staged, judged, published or refused, or unreadable."""

    table: str  # raw.transactions
    source: SourceSpec | None  # None: no feed for this table (a transaction log without events)
    staged: StagedLoad | None = None
    staged_tables: list[str] = field(default_factory=list)  # where a refused version waits for inspection
    verdicts: dict[str, table_rules.Verdict] = field(default_factory=dict)  # empty: nothing was judged
    unreadable: SourceError | None = None

    @property
    def failed(self) -> dict[str, table_rules.Verdict]:
        return {name: verdict for name, verdict in self.verdicts.items() if not verdict[0]}

    @property
    def published(self) -> bool:
        return bool(self.verdicts) and not self.failed


def load_window(
    con,
    contract,
    source: SourceSpec | None,
    spec: IngestionSpec,
    *,
    builtin_table: pd.DataFrame | None,
    s3_client: Callable[[], Any],
    pii_key: bytes | None,
    loaded_at: datetime,
    start: datetime,
    end: datetime,
) -> WindowLoad:
    """Stage, judge and (if every table rule passes) publish ``contract``'s rows of ``[start, end)`` from ``source``.

    ``builtin_table`` is the built-in dataset's table when the source is the generator; ``s3_client`` makes
    the client of an S3 source. A transaction source that delivers no row is judged by nothing (no
    verdicts): the stored days stay as they were.
    """
    from clv_platform.ingest.validate import TRANSACTIONS

    table = f"raw.{contract.name}"
    if source is None:  # e.g. a transaction log without an events feed: the days are empty
        chunks, source_spec = iter([]), SourceSpec()
    else:
        source_spec = _generator_spec(contract) if source.kind == "generator" else source
        chunks = _chunks(source, contract, builtin_table, s3_client, start, end, spec.limits.max_file_bytes)
    load = WindowLoad(table, source)
    try:
        load.staged, staged_t, staged_q = stage_chunks(con, chunks, contract, source_spec, spec, pii_key, loaded_at, start, end)
    except SourceError as error:
        discard_staged(con, [table, f"{table}_quarantine"])
        load.unreadable = error
        return load
    load.staged_tables = [staged_t, staged_q]
    if contract is TRANSACTIONS and source is not None and load.staged.rows_read == 0:
        return load
    load.verdicts = (
        table_rules.staged_transaction_verdicts(con, staged_t, staged_q, table, start, end, spec.limits)
        if contract is TRANSACTIONS
        else table_rules.staged_event_verdicts(con, staged_t, staged_q, spec.limits)
    )
    if not load.failed:
        ts = contract.timestamp
        window = f"{ts} >= TIMESTAMP '{start:%Y-%m-%d %H:%M:%S}' and {ts} < TIMESTAMP '{end:%Y-%m-%d %H:%M:%S}'"
        q_window = (
            f"(partition_date >= TIMESTAMP '{start:%Y-%m-%d}' and "
            f"partition_date < TIMESTAMP '{end:%Y-%m-%d}')"
            " or (partition_date is null and list_contains($sources, source))"
        )
        replace_window(
            con, [(table, staged_t, window), (f"{table}_quarantine", staged_q, q_window)], sorted(load.staged.rows_by_source)
        )
    return load
