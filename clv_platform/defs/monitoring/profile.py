"""monitoring/data_profile: per-column statistics of every raw table, as metadata and as an HTML report."""

import time
from datetime import UTC, datetime

import dagster as dg
from dagster_duckdb import DuckDBResource

from clv_platform import settings
from clv_platform.lib.warehouse import markdown_table

# The raw layer and its quarantine tables; the quarantine ones exist only once a source has rejected rows.
PROFILED_TABLES = (
    "raw.transactions",
    "raw.behavioral_events",
    "raw.customers",
    "raw.transactions_quarantine",
    "raw.behavioral_events_quarantine",
)


def _metadata_name(table: str) -> str:
    return table.replace(".", "_")


@dg.asset(
    key=["monitoring", "data_profile"],
    deps=[
        dg.AssetKey(["raw", "transactions"]),
        dg.AssetKey(["raw", "behavioral_events"]),
        dg.AssetKey(["raw", "customers"]),
    ],
    group_name="monitoring",
    kinds={"duckdb"},
    description=(
        "Per-column profile of each raw and quarantine table (counts, nulls, distinct values, percentiles, "
        "top values); HTML report linked."
    ),
)
def data_profile(context: dg.AssetExecutionContext, warehouse: DuckDBResource):
    from clv_platform.ingest.profile import display_frame, profile_tables, render_profile_html

    started = time.perf_counter()
    with warehouse.get_connection() as con:
        profiles, absent = profile_tables(con, PROFILED_TABLES)
    seconds = time.perf_counter() - started
    if not profiles:
        raise dg.Failure(f"None of {', '.join(PROFILED_TABLES)} exists in the warehouse: nothing to profile.")
    if absent:
        context.log.info(f"Not profiled, no such table: {', '.join(absent)}")

    generated_at = datetime.now(UTC)
    html_path = settings.reports_dir() / "data_profile" / f"data_profile_{generated_at:%Y%m%dT%H%M%SZ}.html"
    html_path.parent.mkdir(parents=True, exist_ok=True)
    notes = [f"Not profiled (no such table): {', '.join(absent)}."] if absent else []
    html_path.write_text(render_profile_html(profiles, "Raw data profile", generated_at, notes=notes), encoding="utf-8")

    row_counts = {table: int(profile["rows"].iloc[0]) if len(profile) else 0 for table, profile in profiles.items()}
    return dg.MaterializeResult(
        metadata={
            "row_counts": dg.MetadataValue.json(row_counts),
            **{f"{_metadata_name(table)}_rows": rows for table, rows in row_counts.items()},
            **{
                f"{_metadata_name(table)}_profile": dg.MetadataValue.md(markdown_table(display_frame(profile)))
                for table, profile in profiles.items()
            },
            "tables_profiled": dg.MetadataValue.json(list(profiles)),
            "tables_absent": dg.MetadataValue.json(absent),
            "profile_seconds": round(seconds, 2),
            "report": dg.MetadataValue.url(html_path.as_uri()),
            "report_path": dg.MetadataValue.path(str(html_path)),
        }
    )
