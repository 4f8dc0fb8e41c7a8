"""raw/*: the built-in generator's transactions, behavioural events and customers, validated into DuckDB."""


import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from clv_platform.lib.warehouse import replace_table


class RawGeneratorConfig(dg.Config):
    """The built-in realistic e-commerce dataset (deterministic by seed)."""

    n_customers: int = Field(default=5_000, description="Customers to simulate.")
    years: int = Field(default=3, description="Length of the history in years.")
    end_date: str = Field(default="2025-12-31", description="Last day of the history (YYYY-MM-DD).")
    seed: int = Field(default=42, description="Random seed; the same seed gives the same data.")
    spend_multiplier: float = Field(default=1.0, description="Scales every customer's spend (drift drills).")
    purchase_rate_multiplier: float = Field(default=1.0, description="Scales purchase rates (drift drills).")


@dg.multi_asset(
    name="raw_generated",
    # Inline: module-level AssetSpecs would be loaded as definitions of their own.
    specs=[
        dg.AssetSpec(["raw", "transactions"], description="Order lines in the UCI Online Retail shape, one row per line as received.", group_name="ingestion", kinds={"duckdb", "pandas"}),
        dg.AssetSpec(["raw", "behavioral_events"], description="Web events (page views, searches, add-to-cart), one row per event.", group_name="ingestion", kinds={"duckdb", "pandas"}),
        dg.AssetSpec(["raw", "customers"], description="One row per customer: country, acquisition channel, signup date.", group_name="ingestion", kinds={"duckdb", "pandas"}),
    ],
)
def raw_generated(config: RawGeneratorConfig, warehouse: DuckDBResource):
    """Generate the dataset once and load its three tables, each checked against the raw contract."""
    from clv_platform import schemas
    from clv_platform.datagen import generate

    data = generate(
        n_customers=config.n_customers,
        years=config.years,
        end_date=config.end_date,
        seed=config.seed,
        spend_multiplier=config.spend_multiplier,
        purchase_rate_multiplier=config.purchase_rate_multiplier,
    )
    transactions = schemas.transactions_schema.validate(data.transactions.rename(columns=schemas.UCI_COLUMNS))
    events = schemas.behavioral_events_schema.validate(data.behavioral_events)
    customers = schemas.customers_schema.validate(data.customers)

    with warehouse.get_connection() as con:
        n_tx = replace_table(con, "raw.transactions", transactions)
        n_ev = replace_table(con, "raw.behavioral_events", events)
        n_cu = replace_table(con, "raw.customers", customers)

    source = {"source": "generator", "seed": config.seed, "end_date": config.end_date}
    yield dg.MaterializeResult(
        asset_key=["raw", "transactions"],
        metadata={
            **source,
            "dagster/row_count": n_tx,
            "lines_generated": len(transactions),
            "cancellation_lines": int(transactions["invoice_no"].str.startswith("C").sum()),
            "lines_without_customer": int(transactions["customer_id"].isna().sum()),
            "zero_price_lines": int((transactions["unit_price"] == 0).sum()),
            "duplicate_lines": int(transactions.duplicated(keep="first").sum()),
            "first_invoice": str(transactions["invoice_date"].min()),
            "last_invoice": str(transactions["invoice_date"].max()),
        },
    )
    yield dg.MaterializeResult(
        asset_key=["raw", "behavioral_events"],
        metadata={**source, "dagster/row_count": n_ev, "events_by_type": dg.MetadataValue.json(events["event_type"].value_counts().to_dict())},
    )
    yield dg.MaterializeResult(
        asset_key=["raw", "customers"],
        metadata={**source, "dagster/row_count": n_cu, "customers_by_channel": dg.MetadataValue.json(customers["acquisition_channel"].value_counts().to_dict())},
    )
