"""The raw layer's contract, written once: every raw table's columns, their types, nullability and descriptions.

Everything else is derived from these tables: the pandera schemas (:mod:`clv_platform.schemas`), the
source spec's canonical columns (:mod:`clv_platform.ingest.spec`), the warehouse DDL
(:func:`sql_columns`) and dbt's sources file (:func:`dbt_sources_yaml`, checked in as
``dbt_project/models/staging/_raw__sources.yml``). Plain data, no pandera: the source spec reads it when
the definitions load.

Regenerate the dbt file after a change here with ``python -m clv_platform.raw_tables``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# pandas dtype -> DuckDB type.
_SQL_TYPES = {"str": "varchar", "int64": "bigint", "float64": "double", "datetime64[ns]": "timestamp"}


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # the pandas dtype of the column in a frame: str, int64, float64, datetime64[ns]
    description: str
    nullable: bool = False
    sql_type: str | None = None  # the warehouse type where it is not the dtype's (a day kept as a date)

    @property
    def warehouse_type(self) -> str:
        return self.sql_type or _SQL_TYPES[self.dtype]


@dataclass(frozen=True)
class Table:
    name: str  # schema.table in the warehouse
    description: str
    fields: tuple[Column, ...]  # the canonical columns a source maps its own to
    provenance: bool = True  # followed by _source, _source_row, _loaded_at

    @property
    def columns(self) -> tuple[Column, ...]:
        return (*self.fields, *PROVENANCE) if self.provenance else self.fields

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.fields)


# Where each stored row came from: file/object/query, its row there, and when it was loaded.
PROVENANCE = (
    Column("_source", "str", "The file, S3 object or query the row was read from."),
    Column("_source_row", "int64", "The row's number in that source (header = row 1 for text and spreadsheets)."),
    Column("_loaded_at", "datetime64[ns]", "When the row was loaded."),
)

EVENT_TYPES = ("page_view", "search", "add_to_cart")

TRANSACTIONS = Table(
    "raw.transactions",
    "One row per invoice line of an online retail log (UCI Online Retail shape), as delivered. Exact duplicate lines "
    "and lines without a customer_id are quarantined by ingestion. Cancellations have an invoice_no starting with 'C' "
    "and a negative quantity; there are zero prices and non-product stock codes (POST, M, D, BANK CHARGES, AMAZONFEE, "
    "DOT, ...). A log without invoices gets one invoice per customer and timestamp ('C' prefix for returns); a log "
    "without products has a NULL stock_code.",
    (
        Column("invoice_no", "str", "Invoice number; a leading 'C' marks a cancellation invoice."),
        # A log without products or countries (customer, date, amount) leaves these empty.
        Column("stock_code", "str", "Product code, or a code for postage, fees, discounts and adjustments.", nullable=True),
        Column("description", "str", "Product description as typed by the shop; may be NULL.", nullable=True),
        Column("quantity", "int64", "Units on the line (items); negative on cancellations and stock adjustments."),
        Column("invoice_date", "datetime64[ns]", "Timestamp of the invoice (shop-local time, no zone)."),
        Column("unit_price", "float64", "Price per unit in the shop's currency (GBP for UCI); 0 for free lines."),
        Column("customer_id", "str", "Customer identifier (an HMAC of it when the source spec hashes customer_id)."),
        Column("country", "str", "Country the customer ordered from (NULL when the log has none).", nullable=True),
    ),
)

BEHAVIORAL_EVENTS = Table(
    "raw.behavioral_events",
    "One row per web event (page view, search, add to cart) of a known customer.",
    (
        Column("event_id", "str", "Unique identifier of the event."),
        Column("session_id", "str", "Identifier of the web session the event belongs to.", nullable=True),
        Column("customer_id", "str", "The customer who produced the event."),
        Column("event_type", "str", f"One of {', '.join(repr(t) for t in EVENT_TYPES)}."),
        Column("event_timestamp", "datetime64[ns]", "When the event happened (same clock as raw.transactions.invoice_date)."),
    ),
)

CUSTOMERS = Table(
    "raw.customers",
    "One row per known customer (CRM snapshot as of the load; attributes are not versioned).",
    (
        Column("customer_id", "str", "Customer identifier, matching raw.transactions.customer_id."),
        Column("country", "str", "Country on the customer record."),
        Column("acquisition_channel", "str", "Marketing channel that acquired the customer."),
        Column("signup_date", "datetime64[ns]", "When the customer signed up (timestamp)."),
    ),
    provenance=False,
)

# The rows a load refused, one table per partitioned raw table, all with these columns.
QUARANTINE_FIELDS = (
    Column("source", "str", "The file, S3 object or query the row was read from."),
    Column("source_row", "int64", "The row's number in that source."),
    Column(
        "partition_date",
        "datetime64[ns]",
        "The event day of the row; NULL when the row has no usable date (kept against its source).",
        nullable=True,
        sql_type="date",
    ),
    Column("rule", "str", "The first row rule the row broke."),
    Column("column_name", "str", "The source column the rule judged; NULL for whole-record rules.", nullable=True),
    Column("value", "str", "The offending value as text; NULL when withheld or absent.", nullable=True),
    Column("message", "str", "What is wrong, on one line."),
    Column("rules", "str", "Every rule the row broke, ';'-separated, in priority order."),
    Column("record", "str", "The record as JSON, after privacy was applied."),
    Column("loaded_at", "datetime64[ns]", "When the load ran."),
)


def quarantine_of(table: Table) -> Table:
    return Table(
        f"{table.name}_quarantine",
        f"One row per record of {table.name} that broke a row rule, with the rule, the column and the value.",
        QUARANTINE_FIELDS,
        provenance=False,
    )


TABLES: dict[str, Table] = {
    t.name: t for t in (TRANSACTIONS, BEHAVIORAL_EVENTS, CUSTOMERS, quarantine_of(TRANSACTIONS), quarantine_of(BEHAVIORAL_EVENTS))
}


def sql_columns(table: str) -> dict[str, str]:
    """``{column: DuckDB type}`` of a raw table, in order, e.g. ``sql_columns("raw.transactions")["quantity"] == "bigint"``."""
    return {column.name: column.warehouse_type for column in TABLES[table].columns}


# --- dbt's sources file -------------------------------------------------------------------

DBT_SOURCES_FILE = Path(__file__).resolve().parent.parent / "dbt_project" / "models" / "staging" / "_raw__sources.yml"
_SOURCE_DESCRIPTION = (
    "Landing tables written by the platform's Python ingestion into the same DuckDB warehouse before dbt runs. "
    "Rows are stored as delivered once they pass the row rules (clv_platform/ingest/validate.py); rows that fail are in "
    "raw.transactions_quarantine / raw.behavioral_events_quarantine with the rule they broke. transactions and "
    "behavioral_events are daily-partitioned by event date in Dagster."
)


def dbt_sources_yaml() -> str:
    """The text of dbt's sources file for the raw tables dbt reads: names, order, types and descriptions from here."""
    import yaml

    def table(t: Table) -> dict:
        columns = [{"name": c.name, "data_type": c.warehouse_type, "description": c.description} for c in t.columns]
        return {"name": t.name.split(".")[1], "description": t.description, "columns": columns}

    document = {
        "sources": [
            {
                "name": "raw",
                "schema": "raw",
                "description": _SOURCE_DESCRIPTION,
                "tables": [table(t) for t in (TRANSACTIONS, BEHAVIORAL_EVENTS, CUSTOMERS)],
            }
        ],
    }

    class Indented(yaml.SafeDumper):  # lists indented under their key, as in the rest of the dbt project
        def increase_indent(self, flow=False, indentless=False):
            return super().increase_indent(flow, False)

    header = "# Generated from clv_platform/raw_tables.py by `python -m clv_platform.raw_tables`: edit there, not here.\n"
    return header + yaml.dump(document, Dumper=Indented, sort_keys=False, width=110, allow_unicode=True)


if __name__ == "__main__":
    DBT_SOURCES_FILE.write_text(dbt_sources_yaml())
    print(f"wrote {DBT_SOURCES_FILE}")
