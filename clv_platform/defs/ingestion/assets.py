"""raw/*: transactions and behavioural events by event day, customers, and their quarantines.

The source (generator, files, S3, PostgreSQL) comes from the spec in ``CLV_SOURCE_CONFIG``. A run
covers a range of daily partitions: it reads the source, applies privacy and the row rules,
stages the new version in ``raw_staging``, and judges it there with the table rules (blocking
checks). Only if every one passes does it replace exactly those days (plus the quarantine rows of
those days and of the sources it read) in one DuckDB transaction; otherwise the published days
stay as they were and the run fails saying so.
"""


from datetime import datetime, timedelta

import dagster as dg
import pandas as pd
from dagster_aws.s3 import S3Resource
from dagster_duckdb import DuckDBResource
from pydantic import Field

from clv_platform.ingest import table_rules
from clv_platform.ingest.readers import SourceError, SourceFrame, iter_source
from clv_platform.ingest.spec import GeneratorOptions, IngestionSpec, SourceSpec
from clv_platform.lib.ingestion import (
    DAILY_PARTITIONS,
    RawSource,
    publish_table,
    replace_window,
    stage,
    staged_name,
    window_of,
)
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


def generated(options: GeneratorOptions):
    from clv_platform.datagen import generate

    return generate(
        n_customers=options.n_customers, years=options.years, end_date=options.end_date, seed=options.seed,
        spend_multiplier=options.spend_multiplier, purchase_rate_multiplier=options.purchase_rate_multiplier,
    )


# pandera (with its optional pyspark probing) is imported in function bodies: definitions load fast.
def _frames(source: SourceSpec, contract, generated_table: pd.DataFrame | None, s3: S3Resource,
            start: datetime, end: datetime, max_file_bytes: int) -> list[SourceFrame]:
    if source.kind == "generator":
        import numpy as np

        return [SourceFrame("generator", generated_table, np.arange(1, len(generated_table) + 1))]
    from clv_platform.ingest.validate import timestamp_column

    ts_column = timestamp_column(source, contract)
    client = s3.get_client() if source.kind == "s3" else None
    return list(iter_source(source, ts_column, start, end, s3_client=client, max_file_bytes=max_file_bytes))


def _generator_spec(contract) -> SourceSpec:
    return SourceSpec(kind="generator", preset="online_retail") if contract.name == "transactions" else SourceSpec(kind="generator")


def _split_window(validated, contract, start: datetime, end: datetime):
    ts = validated.accepted[contract.timestamp]
    accepted = validated.accepted[(ts >= start) & (ts < end)].reset_index(drop=True)
    q = validated.quarantine
    dated = q["partition_date"]
    quarantine = q[dated.isna() | ((dated >= start) & (dated < end))].reset_index(drop=True)
    outside = validated.rows_read - len(accepted) - len(quarantine)
    return accepted, quarantine, outside


def _counts_metadata(validated, accepted: pd.DataFrame, quarantine: pd.DataFrame, outside: int) -> dict:
    in_scope = len(accepted) + len(quarantine)
    by_rule = quarantine["rule"].value_counts().rename_axis("rule").reset_index(name="rows") if len(quarantine) else None
    examples = quarantine.head(10)[["source", "source_row", "rule", "column_name", "value"]] if len(quarantine) else None
    return {
        "dagster/row_count": len(accepted),
        "rows_read_from_source": validated.rows_read,
        "rows_outside_partitions": outside,
        "rows_read": in_scope,
        "rows_accepted": len(accepted),
        "rows_quarantined": len(quarantine),
        # The invariant, stated so a reader sees it hold: read = accepted + quarantined.
        "counts_add_up": in_scope == len(accepted) + len(quarantine) and validated.rows_read == in_scope + outside,
        "quarantined_by_rule": dg.MetadataValue.md(markdown_table(by_rule) if by_rule is not None else "nothing quarantined"),
        "quarantine_examples": dg.MetadataValue.md(markdown_table(examples) if examples is not None else "-"),
        "rows_by_source": dg.MetadataValue.json(validated.rows_by_source),
        "extra_columns_ignored": dg.MetadataValue.json(validated.extra_columns),
        "empty_sources": dg.MetadataValue.json(validated.empty_sources),
    }


def _check(key: dg.AssetKey, name: str, verdict: tuple[bool, str, dict]) -> dg.AssetCheckResult:
    passed, description, metadata = verdict
    return dg.AssetCheckResult(
        asset_key=key, check_name=name, passed=passed,
        severity=dg.AssetCheckSeverity.ERROR, description=description,
        metadata={"summary": description, **{k: v for k, v in metadata.items() if v is not None}},
    )


def _days(start: datetime, end: datetime) -> str:
    last = (end - timedelta(days=1)).date()
    return f"{start:%Y-%m-%d}" if last <= start.date() else f"{start:%Y-%m-%d} .. {last}"


def _kept_previous(what: str, failed: dict, staged: list[str]) -> str:
    """The one line a load rejected by its blocking checks ends with."""
    reasons = "; ".join(verdict[1] for verdict in failed.values())
    return (f"{what}: the new version was not published, the previous one is kept: {reasons}; "
            f"rejected rows in {' and '.join(staged)} (rule: {', '.join(failed)})")


def _fail_unreadable(key: dg.AssetKey, check_names: list[str], error: SourceError):
    """Yield failed checks for an input that cannot be read, then fail with the one-line message."""
    for name in check_names:
        yield _check(key, name, (False, str(error), {"source": error.source, "rule": error.rule, "row": error.row, "column": error.column}))
    raise dg.Failure(description=str(error), metadata={"source": error.source, "rule": error.rule}, allow_retries=False)


@dg.multi_asset(
    name="raw_daily",
    # Inline: module-level AssetSpecs would be loaded as definitions of their own.
    specs=[
        dg.AssetSpec(TRANSACTIONS_KEY, description="Order lines by event day, canonical columns plus _source/_source_row/_loaded_at; rows that break a row rule are in raw/transactions_quarantine.",
                     group_name="ingestion", kinds={"duckdb", "pandas"}, partitions_def=DAILY_PARTITIONS, skippable=True),
        dg.AssetSpec(EVENTS_KEY, description="Web events (page views, searches, add-to-cart) by event day.",
                     group_name="ingestion", kinds={"duckdb", "pandas"}, partitions_def=DAILY_PARTITIONS, skippable=True),
    ],
    check_specs=[
        *(dg.AssetCheckSpec(name, asset=TRANSACTIONS_KEY, description=text, blocking=True) for name, text in TX_CHECKS.items()),
        *(dg.AssetCheckSpec(name, asset=EVENTS_KEY, description=text, blocking=True) for name, text in EV_CHECKS.items()),
    ],
    can_subset=True,
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def raw_daily(context: dg.AssetExecutionContext, config: IngestConfig, raw_source: RawSource,
              warehouse: DuckDBResource, s3: S3Resource):
    """Load the run's days of transactions and events, quarantining what breaks a rule."""
    from clv_platform import schemas
    from clv_platform.ingest.validate import EVENTS, TRANSACTIONS, validate

    spec = raw_source.spec()
    key = raw_source.pii_key()
    start, end = window_of(context)
    loaded_at = datetime.now().replace(microsecond=0)
    data = generated(config.generator_options(spec)) if spec.is_generated else None
    context.log.info(f"source: {spec.transactions.kind}; window [{start:%Y-%m-%d}, {end:%Y-%m-%d}) ({len(context.partition_keys)} days)")

    plans = []
    if TRANSACTIONS_KEY in context.selected_asset_keys:
        plans.append((TRANSACTIONS, TRANSACTIONS_KEY, TX_QUARANTINE_KEY, spec.transactions,
                      data.transactions if data is not None else None))
    if EVENTS_KEY in context.selected_asset_keys:
        plans.append((EVENTS, EVENTS_KEY, EV_QUARANTINE_KEY, spec.behavioral_events,
                      data.behavioral_events if data is not None else None))

    rejected = []
    for contract, asset_key, quarantine_key, source, generated_table in plans:
        checks = TX_CHECKS if contract is TRANSACTIONS else EV_CHECKS
        schema_check = next(iter(checks))
        if source is None:  # e.g. a transaction log without an events feed: the days are empty
            validated = validate([], contract, SourceSpec(), spec.limits, spec.pii, key, loaded_at, spec.history_start)
        else:
            source_spec = _generator_spec(contract) if source.kind == "generator" else source
            try:
                frames = _frames(source, contract, generated_table, s3, start, end, spec.limits.max_file_bytes)
                validated = validate(frames, contract, source_spec, spec.limits, spec.pii, key, loaded_at, spec.history_start)
            except SourceError as error:
                context.log.error(str(error))
                yield from _fail_unreadable(asset_key, list(checks), error)
        accepted, quarantine, outside = _split_window(validated, contract, start, end)
        contract_schema = schemas.transactions_schema if contract is TRANSACTIONS else schemas.behavioral_events_schema
        accepted = contract_schema.validate(accepted)
        table = f"raw.{contract.name}"
        ts = contract.timestamp
        if contract is TRANSACTIONS and source is not None and validated.rows_read == 0:
            # Nothing to load is an error, and the stored days stay as they were.
            empty = ", ".join(validated.empty_sources) or source.kind
            yield _check(asset_key, "input_not_empty", (False, f"the source delivered no rows ({empty})", {}))
            raise dg.Failure(description=f"{empty}: the source delivered no rows (rule: input_not_empty)", allow_retries=False)
        sources = sorted(validated.rows_by_source)
        window = f"{ts} >= TIMESTAMP '{start:%Y-%m-%d %H:%M:%S}' and {ts} < TIMESTAMP '{end:%Y-%m-%d %H:%M:%S}'"
        q_window = (f"(partition_date >= TIMESTAMP '{start:%Y-%m-%d}' and partition_date < TIMESTAMP '{end:%Y-%m-%d}')"
                    " or (partition_date is null and list_contains($sources, source))")
        # Write-audit-publish: the new version is staged, judged against the published history, and
        # swapped in only if every blocking check passes; otherwise the published days stay as they were.
        with connect(warehouse) as con:
            staged, staged_q = stage(con, table, accepted), stage(con, f"{table}_quarantine", quarantine)
            verdicts = (table_rules.staged_transaction_verdicts(con, staged, staged_q, table, start, end, spec.limits)
                        if contract is TRANSACTIONS else table_rules.staged_event_verdicts(con, staged, staged_q, spec.limits))
            failed = {name: verdict for name, verdict in verdicts.items() if not verdict[0]}
            if not failed:
                replace_window(con, [(table, staged, window), (f"{table}_quarantine", staged_q, q_window)], sources)
        if failed:
            message = _kept_previous(f"{table} {_days(start, end)}", failed, [staged, staged_q])
            context.log.error(message)
            yield _check(asset_key, schema_check, (True, "every source read with the mapped columns", {}))
            if contract is TRANSACTIONS:
                yield _check(asset_key, "input_not_empty", (True, f"{validated.rows_read:,} rows read from the source", {}))
            for name, verdict in verdicts.items():
                yield _check(asset_key, name, verdict)
            rejected.append(message)
            continue
        meta = _counts_metadata(validated, accepted, quarantine, outside)
        meta.update({"source": source.kind if source else "none", "window_start": str(start.date()), "window_end": str(end.date())})
        if contract is TRANSACTIONS:
            from clv_platform.ingest.cleaning import cleaning_summary

            meta["cleaning_rules"] = dg.MetadataValue.md(markdown_table(cleaning_summary(accepted).fillna("-")))
        if quarantine_key is not None:
            context.log_event(dg.AssetMaterialization(asset_key=quarantine_key, metadata={
                "dagster/row_count": len(quarantine), "rows_quarantined_this_run": len(quarantine),
                "quarantined_by_rule": meta["quarantined_by_rule"], "window_start": meta["window_start"], "window_end": meta["window_end"],
            }))
        if len(quarantine):
            top = quarantine.iloc[0]
            context.log.warning(
                f"{len(quarantine):,} {contract.name} row(s) quarantined, e.g. {top['source']}: row {top['source_row']}: "
                f"column '{top['column_name']}': {top['message']} (rule: {top['rule']}); see {table}_quarantine"
            )
        yield dg.MaterializeResult(asset_key=asset_key, metadata=meta)
        yield _check(asset_key, schema_check, (True, "every source read with the mapped columns", {
            "sources": len(validated.rows_by_source), "extra_columns_ignored": str(validated.extra_columns) if validated.extra_columns else None}))
        if contract is TRANSACTIONS:
            yield _check(asset_key, "input_not_empty", (True, f"{validated.rows_read:,} rows read from the source", {}))
        for name, verdict in verdicts.items():
            yield _check(asset_key, name, verdict)
    if rejected:
        raise dg.Failure(description="; ".join(rejected), allow_retries=False)


@dg.asset(
    key=CUSTOMERS_KEY,
    deps=[TRANSACTIONS_KEY],
    group_name="ingestion",
    kinds={"duckdb", "pandas"},
    description="One row per customer: country, acquisition channel, signup date. From the customer feed, "
                "else derived from raw.transactions (most frequent country, channel 'unknown', first purchase).",
    check_specs=[dg.AssetCheckSpec("acquisition_channels_stable", asset=CUSTOMERS_KEY, blocking=True,
                                   description="Channels never seen before hold at most limits.max_new_category_share of the customers.")],
)
def raw_customers(context: dg.AssetExecutionContext, config: IngestConfig, raw_source: RawSource, warehouse: DuckDBResource):
    from clv_platform import schemas
    from clv_platform.ingest.validate import apply_pii

    spec = raw_source.spec()
    extra = {}
    if spec.is_generated:
        customers = generated(config.generator_options(spec)).customers
        customers = apply_pii(customers, spec.pii, raw_source.pii_key())
        origin = "generator"
    else:
        with connect(warehouse) as con:
            derived = con.execute(
                """
                select customer_id, mode(country) as country, 'unknown' as acquisition_channel,
                       min(invoice_date) as signup_date
                from raw.transactions group by customer_id order by customer_id
                """
            ).df()
        if spec.customers is not None:
            try:
                customers, dropped = _customer_feed(spec, raw_source.pii_key(), derived)
            except SourceError as error:
                context.log.error(str(error))
                raise dg.Failure(description=str(error), allow_retries=False) from None
            origin = f"customer feed ({spec.customers.kind})"
            extra["feed_rows_dropped"] = dg.MetadataValue.json(dropped)
        else:
            customers, origin = derived, "derived from raw.transactions"
        customers["country"] = customers["country"].fillna("Unknown")
    customers = schemas.customers_schema.validate(customers)
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
        raise dg.Failure(description=message, allow_retries=False)
    yield dg.MaterializeResult(metadata={
        "dagster/row_count": count, "origin": origin, "customers_by_channel": dg.MetadataValue.json(counts), **extra,
    })
    yield _check(CUSTOMERS_KEY, "acquisition_channels_stable", verdict)


def _customer_feed(spec: IngestionSpec, pii_key: bytes | None, derived: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The customer feed mapped to the contract; gaps filled from the transactions (first purchase, country)."""
    from clv_platform.ingest.validate import CUSTOMERS, apply_pii, check_columns, normalize_customer_ids, parse_text, parse_timestamp

    source = spec.customers
    mapping = source.mapping(CUSTOMERS.fields)
    if "customer_id" not in mapping:
        raise SourceError(source.path or source.kind, "required_column", "the customer feed's mapping names no customer_id column")
    parts = []
    for frame in iter_source(source, mapping.get("signup_date", mapping["customer_id"]), max_file_bytes=spec.limits.max_file_bytes):
        if frame.frame.shape[1] == 0:
            continue
        check_columns(frame, source, CUSTOMERS, bool(spec.pii.columns))
        part = pd.DataFrame({name: parse_text(frame.frame[column]) for name, column in mapping.items()})
        if "signup_date" in mapping:
            part["signup_date"] = parse_timestamp(frame.frame[mapping["signup_date"]], part["signup_date"], source.timestamp_formats)
        parts.append(part)
    feed = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["customer_id"])
    feed["customer_id"] = normalize_customer_ids(feed["customer_id"])
    feed = apply_pii(feed, spec.pii, pii_key)
    without_id = int(feed["customer_id"].isna().sum())
    feed = feed[feed["customer_id"].notna()]
    repeated = int(feed["customer_id"].duplicated(keep="last").sum())
    feed = feed.drop_duplicates("customer_id", keep="last")
    merged = feed.merge(derived, on="customer_id", how="left", suffixes=("", "_derived"))
    for column in ("country", "acquisition_channel", "signup_date"):
        if column not in merged:
            merged[column] = None
        if f"{column}_derived" in merged:
            merged[column] = merged[column].where(merged[column].notna(), merged[f"{column}_derived"])
    merged["acquisition_channel"] = merged["acquisition_channel"].fillna("unknown")
    no_date = int(merged["signup_date"].isna().sum())
    merged = merged[merged["signup_date"].notna()]
    out = merged[["customer_id", "country", "acquisition_channel", "signup_date"]].reset_index(drop=True)
    out["signup_date"] = pd.to_datetime(out["signup_date"]).astype("datetime64[ns]")
    # Dropped rows are counted, never silent: a customer without an id, or without a signup date or purchase.
    return out, {"without_customer_id": without_id, "repeated_customer_id_kept_last": repeated,
                 "without_signup_date_or_purchase": no_date}


# Written by raw_daily in the same transaction as the table they belong to; shown in the graph as assets.
transactions_quarantine = dg.AssetSpec(
    TX_QUARANTINE_KEY, group_name="ingestion", kinds={"duckdb"},
    description="Transaction lines that broke a row rule: source, source_row, partition_date, rule, column_name, value, "
                "message, every rule broken (rules) and the record as JSON. Rows read = accepted + quarantined.",
)
behavioral_events_quarantine = dg.AssetSpec(
    EV_QUARANTINE_KEY, group_name="ingestion", kinds={"duckdb"},
    description="Events that broke a row rule; same columns as raw/transactions_quarantine.",
)
