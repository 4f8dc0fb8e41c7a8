"""staging -> intermediate -> marts: the dbt models, with dbt tests as asset checks."""

import json
from collections.abc import Iterator

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets
from dagster_duckdb import DuckDBResource
from pydantic import Field

from clv_platform import settings
from clv_platform.lib.dbt import ClvDbtTranslator, dbt_project, ensure_manifest, incremental_definition_fingerprint, vars_args
from clv_platform.lib.fingerprint import BOUNDARY_MODEL, full_refresh_reason, incremental_state
from clv_platform.lib.warehouse import markdown_table

# dbt_project.yml's vars: a hand-run dbt build and a Dagster run with the default config build the same features.
_DBT_DEFAULTS = settings.dbt_var_defaults()


class FeatureConfig(dg.Config):
    """Point-in-time parameters passed to dbt as --vars; their defaults are dbt_project.yml's vars."""

    cutoff_date: str = Field(
        default=_DBT_DEFAULTS["cutoff_date"] or "",
        description="Scoring cutoff (YYYY-MM-DD); empty = the day after the latest transaction.",
    )
    horizon_days: int = Field(
        default=_DBT_DEFAULTS["horizon_days"], description="Label horizon in days after each training cutoff."
    )
    training_cutoffs: int = Field(
        default=_DBT_DEFAULTS["training_cutoffs"], description="How many past cutoffs training_examples stacks."
    )
    cutoff_spacing_days: int = Field(
        default=_DBT_DEFAULTS["cutoff_spacing_days"],
        description="Days between training cutoffs from the second on (the first, the evaluation cutoff, and the second, "
        "the newest trainable on it, are horizon_days apart).",
    )
    order_value_cap_quantile: float | None = Field(
        default=_DBT_DEFAULTS["order_value_cap_quantile"],
        description="Order values (a customer's purchases of one day) above this quantile of the orders before each cutoff "
        "are capped, in features and labels; null disables capping.",
    )
    incremental_lookback_days: int = Field(
        default=_DBT_DEFAULTS["incremental_lookback_days"],
        description="Days before the latest built day that an incremental run rebuilds (the daily models: "
        "int_transaction_lines, int_customer_days, int_customer_session_days).",
    )
    full_refresh: bool = Field(
        default=False,
        description="Rebuild the incremental daily aggregates from scratch. "
        "Done anyway when raw history before the lookback changed since the last build.",
    )

    def dbt_vars(self) -> dict:
        return {
            "cutoff_date": self.cutoff_date or None,
            "horizon_days": self.horizon_days,
            "training_cutoffs": self.training_cutoffs,
            "cutoff_spacing_days": self.cutoff_spacing_days,
            "order_value_cap_quantile": self.order_value_cap_quantile,
            "incremental_lookback_days": self.incremental_lookback_days,
        }


DBT_ASSETS_NAME = "clv_dbt_models"
CUSTOMER_FEATURES = dg.AssetKey(["marts", "customer_features"])
CUSTOMER_DAYS = dg.AssetKey(BOUNDARY_MODEL.split("."))


def order_value_cap_metadata(warehouse: DuckDBResource) -> dict:
    """The caps of intermediate.int_order_value_caps as materialization metadata."""
    import pandas as pd

    with warehouse.get_connection() as con:
        caps = con.execute(
            """select cutoff_date, cutoff_kind, cap_value, orders_before_cutoff, orders_capped, label_orders_capped
               from intermediate.int_order_value_caps order by cutoff_date desc"""
        ).df()
        quantile = con.execute("select max(cap_quantile) from intermediate.int_order_value_caps").fetchone()[0]
    scoring = caps[caps["cutoff_kind"] == "scoring"].iloc[0]
    caps["cutoff_date"] = caps["cutoff_date"].astype(str)
    return {
        "order_value_cap_quantile": None if quantile is None else float(quantile),
        "order_value_cap": None if pd.isna(scoring["cap_value"]) else float(scoring["cap_value"]),
        "orders_capped": int(scoring["orders_capped"]),
        "order_value_caps": dg.MetadataValue.md(markdown_table(caps)),
    }


def needs_full_refresh(context: dg.AssetExecutionContext, warehouse: DuckDBResource, definitions: str) -> str | None:
    """Why the daily aggregates must be rebuilt from scratch (see :func:`full_refresh_reason`), or None."""
    event = context.instance.get_latest_materialization_event(CUSTOMER_DAYS)
    metadata = event.asset_materialization.metadata if event and event.asset_materialization else {}
    with warehouse.get_connection() as con:
        return full_refresh_reason(con, {key: value.value for key, value in metadata.items()}, definitions)


def dbt_models(project: DbtProject) -> dg.AssetsDefinition:
    """The dbt models as assets; the manifest is parsed first when it is missing or stale."""
    manifest = ensure_manifest(project)

    @dbt_assets(manifest=manifest, project=project, name=DBT_ASSETS_NAME, dagster_dbt_translator=ClvDbtTranslator())
    def clv_dbt_models(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: DuckDBResource, config: FeatureConfig
    ) -> Iterator:
        on_duckdb = dbt.target in (None, "duckdb")
        definitions = incremental_definition_fingerprint(json.loads(manifest.read_text()))  # several MB of JSON: once
        reason = (
            "asked for in the run config"
            if config.full_refresh
            else (needs_full_refresh(context, warehouse, definitions) if on_duckdb else None)
        )
        context.log.info(
            f"full refresh of the daily aggregates: {reason}" if reason else "incremental run of the daily aggregates"
        )
        args = ["build", *vars_args(config.dbt_vars()), *(["--full-refresh"] if reason else [])]

        # Metadata read from the warehouse is added once dbt has exited (dbt-duckdb holds the file
        # while it runs), so the events are passed on when the build is over.
        events: list = []
        try:
            events.extend(dbt.cli(args, context=context).stream())
        except Exception:
            yield from events
            raise
        for index, event in enumerate(events):
            key = context.asset_key_for_output(event.output_name) if isinstance(event, dg.Output) else None
            extra = {}
            if key == CUSTOMER_DAYS:
                extra = {"full_refresh": bool(reason), "full_refresh_reason": reason or "", "definition_fingerprint": definitions}
                if on_duckdb:
                    with warehouse.get_connection() as con:
                        extra |= incremental_state(con, config.incremental_lookback_days)
            elif key == CUSTOMER_FEATURES and on_duckdb:
                extra = order_value_cap_metadata(warehouse)
            if extra:
                events[index] = event.with_metadata({**event.metadata, **extra})
        if not on_duckdb:
            context.log.info(f"dbt target {dbt.target}: order value caps are in its intermediate.int_order_value_caps")
        yield from events

    return clv_dbt_models


@dg.definitions
def features() -> dg.Definitions:
    # Built when the definitions load, not at import: the manifest may have to be parsed first.
    return dg.Definitions(assets=[dbt_models(dbt_project())])
