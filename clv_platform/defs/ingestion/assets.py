"""raw/*: transactions and behavioural events by event day, customers, and their quarantines.

The source (generator, files, S3, PostgreSQL) comes from the spec in ``CLV_SOURCE_CONFIG``. A run
covers a range of daily partitions: it reads the source, applies privacy and the row rules,
stages the new version in ``raw_staging``, and judges it there with the table rules (blocking
checks). Only if every one passes does it replace exactly those days (plus the quarantine rows of
those days and of the sources it read) in one DuckDB transaction; otherwise the published days
stay as they were and the run fails saying so.
"""

from datetime import datetime, timedelta
from typing import NamedTuple

import dagster as dg
import pandas as pd
from dagster_aws.s3 import S3Resource
from dagster_duckdb import DuckDBResource
from pydantic import Field

from clv_platform.ingest import table_rules
from clv_platform.ingest.readers import SourceError
from clv_platform.ingest.spec import GeneratorOptions, IngestionSpec
from clv_platform.lib.ingestion import (
    DAILY_PARTITIONS,
    RawSource,
    builtin_dataset,
    publish_table,
    spec_error_note,
    staged_name,
    window_of,
)
from clv_platform.lib.raw_load import StagedLoad, WindowLoad, load_window
from clv_platform.lib.warehouse import connect, markdown_table, replace_table

TRANSACTIONS_KEY = dg.AssetKey(["raw", "transactions"])
EVENTS_KEY = dg.AssetKey(["raw", "behavioral_events"])
CUSTOMERS_KEY = dg.AssetKey(["raw", "customers"])
TX_QUARANTINE_KEY = dg.AssetKey(["raw", "transactions_quarantine"])
EV_QUARANTINE_KEY = dg.AssetKey(["raw", "behavioral_events_quarantine"])

TX_CHECKS = {
    "schema_matches_contract": "Every source file has the mapped columns and can be read.",
    "input_not_empty": "The source delivered at least one row.",
    "quarantine_share_within_limit": "At most limits.max_quarantine_share of the rows in the window were quarantined.",
    "volume_change_within_limit": "Mean daily lines within limits.max_volume_ratio of the previous window's.",
    "mean_order_value_stable": "Mean order value within limits.max_order_value_ratio of the previous window's.",
    "countries_stable": "Countries never seen before hold at most limits.max_new_category_share of the rows.",
}
EV_CHECKS = {
    "events_schema_matches_contract": "Every events source has the mapped columns and can be read.",
    "events_quarantine_share_within_limit": "At most limits.max_quarantine_share of the events in the window were quarantined.",
}


class _RawTable(NamedTuple):
    """A daily raw table raw_daily loads: its asset, its quarantine's, its checks (the schema check first)."""

    name: str  # the contract's, the spec's and the built-in dataset's name for it
    key: dg.AssetKey
    quarantine_key: dg.AssetKey
    checks: dict[str, str]


RAW_TRANSACTIONS = _RawTable("transactions", TRANSACTIONS_KEY, TX_QUARANTINE_KEY, TX_CHECKS)
RAW_EVENTS = _RawTable("behavioral_events", EVENTS_KEY, EV_QUARANTINE_KEY, EV_CHECKS)


class IngestConfig(dg.Config):
    """Overrides of the generator options in the source spec (used only when the source is the generator)."""

    n_customers: int | None = Field(default=None, description="Customers to simulate.")
    years: int | None = Field(default=None, description="Length of the history in years.")
    end_date: str | None = Field(default=None, description="Last day of the history (YYYY-MM-DD).")
    seed: int | None = Field(default=None, description="Random seed; the same seed gives the same data.")
    spend_multiplier: float | None = Field(default=None, description="Scales every customer's spend (drift drills).")
    purchase_rate_multiplier: float | None = Field(default=None, description="Scales purchase rates (drift drills).")

    def generator_options(self, spec: IngestionSpec) -> GeneratorOptions:
        overrides = {k: v for k, v in self.model_dump().items() if v is not None}
        return spec.generator.model_copy(update=overrides)


def _counts_metadata(staged: StagedLoad) -> dict:
    in_scope = staged.accepted + staged.quarantined
    by_rule = (
        pd.DataFrame(sorted(staged.by_rule.items(), key=lambda kv: -kv[1]), columns=["rule", "rows"]) if staged.by_rule else None
    )
    examples = staged.examples[["source", "source_row", "rule", "column_name", "value"]] if staged.examples is not None else None
    return {
        "dagster/row_count": staged.accepted,
        "rows_read_from_source": staged.rows_read,
        "rows_outside_partitions": staged.outside,
        "rows_read": in_scope,
        "rows_accepted": staged.accepted,
        "rows_quarantined": staged.quarantined,
        "quarantined_by_rule": dg.MetadataValue.md(markdown_table(by_rule) if by_rule is not None else "nothing quarantined"),
        "quarantine_examples": dg.MetadataValue.md(markdown_table(examples) if examples is not None else "-"),
        "rows_by_source": dg.MetadataValue.json(staged.rows_by_source),
        "extra_columns_ignored": dg.MetadataValue.json(staged.extra_columns),
        "empty_sources": dg.MetadataValue.json(staged.empty_sources),
    }


def _check(key: dg.AssetKey, name: str, verdict: tuple[bool, str, dict]) -> dg.AssetCheckResult:
    passed, description, metadata = verdict
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=name,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={"summary": description, **{k: v for k, v in metadata.items() if v is not None}},
    )


def _days(start: datetime, end: datetime) -> str:
    last = (end - timedelta(days=1)).date()
    return f"{start:%Y-%m-%d}" if last <= start.date() else f"{start:%Y-%m-%d} .. {last}"


def _kept_previous(what: str, failed: dict, staged: list[str]) -> str:
    """The one line a load rejected by its blocking checks ends with."""
    reasons = "; ".join(verdict[1] for verdict in failed.values())
    return (
        f"{what}: the new version was not published, the previous one is kept: {reasons}; "
        f"rejected rows in {' and '.join(staged)} (rule: {', '.join(failed)})"
    )


def _fail_unreadable(key: dg.AssetKey, check_names: list[str], error: SourceError):
    """Yield failed checks for an input that cannot be read, then fail with the one-line message."""
    for name in check_names:
        yield _check(
            key, name, (False, str(error), {"source": error.source, "rule": error.rule, "row": error.row, "column": error.column})
        )
    raise dg.Failure(description=str(error), metadata={"source": error.source, "rule": error.rule}, allow_retries=False)


def _described(description: str) -> dict:
    """The asset's description and metadata; a source spec that cannot be read shows in both (its runs fail with it)."""
    text, metadata = spec_error_note(description)
    return {"description": text, "metadata": metadata}


@dg.multi_asset(
    name="raw_daily",
    # Inline: module-level AssetSpecs would be loaded as definitions of their own.
    specs=[
        dg.AssetSpec(
            TRANSACTIONS_KEY,
            **_described(
                "Order lines by event day, canonical columns plus _source/_source_row/_loaded_at; "
                "rows that break a row rule are in raw/transactions_quarantine."
            ),
            group_name="ingestion",
            kinds={"duckdb", "pandas"},
            partitions_def=DAILY_PARTITIONS,
            skippable=True,
        ),
        dg.AssetSpec(
            EVENTS_KEY,
            **_described("Web events (page views, searches, add-to-cart) by event day."),
            group_name="ingestion",
            kinds={"duckdb", "pandas"},
            partitions_def=DAILY_PARTITIONS,
            skippable=True,
        ),
    ],
    check_specs=[
        *(dg.AssetCheckSpec(name, asset=TRANSACTIONS_KEY, description=text, blocking=True) for name, text in TX_CHECKS.items()),
        *(dg.AssetCheckSpec(name, asset=EVENTS_KEY, description=text, blocking=True) for name, text in EV_CHECKS.items()),
    ],
    can_subset=True,
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def raw_daily(
    context: dg.AssetExecutionContext, config: IngestConfig, raw_source: RawSource, warehouse: DuckDBResource, s3: S3Resource
):
    """Load the run's days of transactions and events, quarantining what breaks a rule."""
    from clv_platform.ingest.validate import EVENTS, TRANSACTIONS

    spec = raw_source.spec()
    pii_key = raw_source.pii_key()
    start, end = window_of(context)
    loaded_at = datetime.now().replace(microsecond=0)
    data = builtin_dataset(config.generator_options(spec)) if spec.is_generated else None
    context.log.info(
        f"source: {spec.transactions.kind}; window [{start:%Y-%m-%d}, {end:%Y-%m-%d}) ({len(context.partition_keys)} days)"
    )
    rejected = []
    for table, contract in ((RAW_TRANSACTIONS, TRANSACTIONS), (RAW_EVENTS, EVENTS)):
        if table.key not in context.selected_asset_keys:
            continue
        with connect(warehouse) as con:
            load = load_window(
                con,
                contract,
                getattr(spec, table.name),
                spec,
                builtin_table=getattr(data, table.name) if data is not None else None,
                s3_client=s3.get_client,
                pii_key=pii_key,
                loaded_at=loaded_at,
                start=start,
                end=end,
            )
        refusal = yield from _reported(context, table, load, start, end)
        if refusal:
            rejected.append(refusal)
    if rejected:
        # A "rule": the data broke a rule (the CLI exits 2), the platform did not break.
        raise dg.Failure(description="; ".join(rejected), metadata={"rule": "blocking_checks"}, allow_retries=False)


def _reported(context, table: _RawTable, load: WindowLoad, start: datetime, end: datetime):
    """Yield the checks (and, when published, the materializations) of one table's load; return the line of a refusal.

    An unreadable source, or one that delivered nothing, fails the step at once: the stored days stay as they were.
    """
    if load.unreadable is not None:
        context.log.error(str(load.unreadable))
        yield from _fail_unreadable(table.key, list(table.checks), load.unreadable)
    staged = load.staged
    if not load.verdicts:
        empty = ", ".join(staged.empty_sources) or load.source.kind
        yield _check(table.key, "input_not_empty", (False, f"the source delivered no rows ({empty})", {}))
        raise dg.Failure(
            description=f"{empty}: the source delivered no rows (rule: input_not_empty)",
            metadata={"rule": "input_not_empty"},
            allow_retries=False,
        )
    refusal = None
    if load.failed:
        refusal = _kept_previous(f"{load.table} {_days(start, end)}", load.failed, load.staged_tables)
        context.log.error(refusal)
    else:
        yield from _published(context, table, load, start, end)
    read_check = {
        "sources": len(staged.rows_by_source),
        "chunks": staged.chunks,
        "extra_columns_ignored": str(staged.extra_columns) if staged.extra_columns else None,
    }
    yield _check(table.key, next(iter(table.checks)), (True, "every source read with the mapped columns", read_check))
    if table.name == "transactions":
        yield _check(table.key, "input_not_empty", (True, f"{staged.rows_read:,} rows read from the source", {}))
    for name, verdict in load.verdicts.items():
        yield _check(table.key, name, verdict)
    return refusal


def _published(context, table: _RawTable, load: WindowLoad, start: datetime, end: datetime):
    """The materializations (the table's and its quarantine's) and the log line of a load that was published."""
    from clv_platform.ingest.validate import describe_quarantined

    staged = load.staged
    meta = _counts_metadata(staged)
    meta.update(
        {"source": load.source.kind if load.source else "none", "window_start": str(start.date()), "window_end": str(end.date())}
    )
    if staged.cleaning is not None:
        meta["cleaning_rules"] = dg.MetadataValue.md(markdown_table(staged.cleaning.fillna("-")))
    context.log_event(
        dg.AssetMaterialization(
            asset_key=table.quarantine_key,
            metadata={
                "dagster/row_count": staged.quarantined,
                "rows_quarantined_this_run": staged.quarantined,
                "quarantined_by_rule": meta["quarantined_by_rule"],
                "window_start": meta["window_start"],
                "window_end": meta["window_end"],
            },
        )
    )
    if staged.quarantined:
        context.log.warning(
            f"{staged.quarantined:,} {table.name} row(s) quarantined, "
            f"e.g. {describe_quarantined(staged.examples.iloc[0])}; see {load.table}_quarantine"
        )
    yield dg.MaterializeResult(asset_key=table.key, metadata=meta)


@dg.asset(
    key=CUSTOMERS_KEY,
    deps=[TRANSACTIONS_KEY],
    group_name="ingestion",
    kinds={"duckdb", "pandas"},
    **_described(
        "One row per customer: country, acquisition channel, signup date. From the customer feed, "
        "else derived from raw.transactions (most frequent country, channel 'unknown', first purchase)."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            "acquisition_channels_stable",
            asset=CUSTOMERS_KEY,
            blocking=True,
            description="Channels never seen before hold at most limits.max_new_category_share of the customers.",
        )
    ],
)
def raw_customers(context: dg.AssetExecutionContext, config: IngestConfig, raw_source: RawSource, warehouse: DuckDBResource):
    from clv_platform import schemas
    from clv_platform.ingest.customers import customer_table

    spec = raw_source.spec()
    builtin = builtin_dataset(config.generator_options(spec)).customers if spec.is_generated else None
    try:
        with connect(warehouse) as con:
            table = customer_table(spec, raw_source.pii_key(), None if spec.is_generated else con, builtin)
    except SourceError as error:
        context.log.error(str(error))
        raise dg.Failure(description=str(error), metadata={"rule": error.rule}, allow_retries=False) from None
    extra = {} if table.feed_rows_dropped is None else {"feed_rows_dropped": dg.MetadataValue.json(table.feed_rows_dropped)}
    origin = table.origin
    customers = schemas.customers_schema.validate(table.customers)
    counts = customers["acquisition_channel"].value_counts().to_dict()
    with connect(warehouse) as con:
        staged = staged_name("raw.customers")
        replace_table(con, staged, customers)
        verdict = table_rules.staged_channel_verdict(con, staged, "raw.customers", spec.limits)
        count = publish_table(con, "raw.customers", staged) if verdict[0] else None
    if count is None:
        message = _kept_previous("raw.customers", {"acquisition_channels_stable": verdict}, [staged])
        context.log.error(message)
        yield _check(CUSTOMERS_KEY, "acquisition_channels_stable", verdict)
        raise dg.Failure(description=message, metadata={"rule": "acquisition_channels_stable"}, allow_retries=False)
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": count,
            "origin": origin,
            "customers_by_channel": dg.MetadataValue.json(counts),
            **extra,
        }
    )
    yield _check(CUSTOMERS_KEY, "acquisition_channels_stable", verdict)


# Written by raw_daily in the same transaction as the table they belong to; shown in the graph as assets.
transactions_quarantine = dg.AssetSpec(
    TX_QUARANTINE_KEY,
    group_name="ingestion",
    kinds={"duckdb"},
    description="Transaction lines that broke a row rule: source, source_row, partition_date, rule, column_name, value, "
    "message, every rule broken (rules) and the record as JSON. Rows read = accepted + quarantined.",
)
behavioral_events_quarantine = dg.AssetSpec(
    EV_QUARANTINE_KEY,
    group_name="ingestion",
    kinds={"duckdb"},
    description="Events that broke a row rule; same columns as raw/transactions_quarantine.",
)
