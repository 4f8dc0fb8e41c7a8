"""One raw contract: the pandera schemas, the spec's columns, the warehouse tables and dbt's sources all agree."""

from __future__ import annotations

from datetime import date, datetime

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml

from clv_platform import schemas
from clv_platform.ingest import spec as source_spec
from clv_platform.ingest.readers import SourceFrame
from clv_platform.ingest.validate import EVENTS, QUARANTINE_COLUMNS, TRANSACTIONS, validate
from clv_platform.lib.ingestion import RAW_TABLES, ensure_table, stage
from clv_platform.settings import DBT_PROJECT_DIR

SOURCES_FILE = DBT_PROJECT_DIR / "models" / "staging" / "_raw__sources.yml"
PROVENANCE = ["_source", "_source_row", "_loaded_at"]
# What each pandera dtype is stored as in DuckDB (information_schema spelling).
DUCKDB_TYPE = {"str": "VARCHAR", "int64": "BIGINT", "float64": "DOUBLE", "datetime64[ns]": "TIMESTAMP"}
SCHEMAS = {
    "transactions": schemas.transactions_schema,
    "behavioral_events": schemas.behavioral_events_schema,
    "customers": schemas.customers_schema,
}


def _types(schema) -> dict[str, str]:
    return {name: DUCKDB_TYPE[str(column.dtype)] for name, column in schema.columns.items()}


def _warehouse_types(con, table: str) -> dict[str, str]:
    schema, name = table.split(".")
    rows = con.execute(
        "select column_name, data_type from information_schema.columns where table_schema = ? and table_name = ? "
        "order by ordinal_position",
        [schema, name],
    ).fetchall()
    return dict(rows)


def test_dbt_sources_declare_the_schemas_columns_in_order_with_their_types():
    declared = {t["name"]: t for t in yaml.safe_load(SOURCES_FILE.read_text())["sources"][0]["tables"]}
    assert set(declared) == set(SCHEMAS)
    for name, schema in SCHEMAS.items():
        columns = {c["name"]: c.get("data_type", "").upper() for c in declared[name]["columns"]}
        assert columns == _types(schema) and list(columns) == list(schema.columns), f"raw.{name} in {SOURCES_FILE.name}"
        assert all(c.get("description") for c in declared[name]["columns"]), f"raw.{name}: a column without description"


def test_the_checked_in_dbt_sources_file_is_the_generated_one():
    from clv_platform.raw_tables import dbt_sources_yaml

    assert SOURCES_FILE.read_text() == dbt_sources_yaml(), (
        f"{SOURCES_FILE} differs from clv_platform/raw_tables.py: run `python -m clv_platform.raw_tables`"
    )


@pytest.mark.parametrize(
    ("fields", "schema"),
    [
        (source_spec.TRANSACTION_FIELDS, schemas.transactions_schema),
        (source_spec.EVENT_FIELDS, schemas.behavioral_events_schema),
        (source_spec.CUSTOMER_FIELDS, schemas.customers_schema),
    ],
)
def test_the_spec_maps_exactly_the_schemas_columns(fields, schema):
    assert list(fields) == [c for c in schema.columns if c not in PROVENANCE]
    # The canonical preset is the identity on those columns.
    if schema is schemas.transactions_schema:
        assert source_spec.SourceSpec(preset="canonical").mapping(fields) == {c: c for c in fields}


def test_the_warehouse_tables_have_the_schemas_columns_and_types(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    for table, schema in (
        ("raw.transactions", schemas.transactions_schema),
        ("raw.behavioral_events", schemas.behavioral_events_schema),
    ):
        ensure_table(con, table)
        assert _warehouse_types(con, table) == _types(schema)
        assert list(_warehouse_types(con, table)) == list(schema.columns)


def _load(contract, frame: pd.DataFrame):
    source = SourceFrame("lines.csv", frame, np.arange(2, len(frame) + 2))
    return validate(
        [source],
        contract,
        source_spec.SourceSpec(),
        source_spec.RuleLimits(),
        source_spec.PiiSpec(),
        None,
        datetime(2024, 6, 1),
        date(2020, 1, 1),
    )


LINES = pd.DataFrame(
    {
        "invoice_no": ["1", "2", "3", "3"],
        "stock_code": ["A", None, "B", "B"],
        "description": [None, "mug", "cup", "cup"],
        "quantity": ["2", "1", "x", "x"],
        "invoice_date": ["2024-01-02 10:00", "2024-01-03 11:00", "2024-01-04", "not a date"],
        "unit_price": ["1.5", "2", "3", "3"],
        "customer_id": ["c1", "c2", "c3", None],
        "country": ["UK", None, "FR", "FR"],
    }
)
EVENT_LINES = pd.DataFrame(
    {
        "event_id": ["e1", "e2", "e2"],
        "session_id": ["s1", None, "s2"],
        "customer_id": ["c1", "c2", "c2"],
        "event_type": ["page_view", "search", "teleport"],
        "event_timestamp": ["2024-01-02 10:00", "2024-01-03 11:00", "2024-01-03 12:00"],
    }
)


@pytest.mark.parametrize(
    ("contract", "lines", "schema"), [(TRANSACTIONS, LINES, "transactions"), (EVENTS, EVENT_LINES, "behavioral_events")]
)
def test_accepted_and_quarantined_rows_round_trip_through_the_warehouse_tables(tmp_path, contract, lines, schema):
    """A load's rows, accepted and quarantined, typed as the schema in and out of the staging tables."""
    table = f"raw.{contract.name}"
    loaded = _load(contract, lines)
    assert len(loaded.accepted) + len(loaded.quarantine) == len(lines) and len(loaded.quarantine) > 0
    empty = _load(contract, lines.iloc[:1])  # nothing quarantined: the same columns, typed the same
    assert empty.quarantine.empty
    assert empty.quarantine.dtypes.to_dict() == loaded.quarantine.dtypes.to_dict()

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    accepted = SCHEMAS[schema].validate(loaded.accepted)
    staged = stage(con, table, accepted)
    assert list(_warehouse_types(con, staged)) == list(SCHEMAS[schema].columns)
    SCHEMAS[schema].validate(con.execute(f"select * from {staged}").df())
    for frame in (loaded.quarantine, empty.quarantine):
        staged = stage(con, f"{table}_quarantine", frame)
        back = con.execute(f"select * from {staged}").df()
        assert list(back.columns) == list(QUARANTINE_COLUMNS) == list(frame.columns)
        assert len(back) == len(frame)
    assert _warehouse_types(con, staged)["partition_date"] == "DATE"
    assert set(RAW_TABLES[f"{table}_quarantine"]) == set(QUARANTINE_COLUMNS)
