"""The raw partitions' fingerprints on a real DuckDB: what a model came from, and when an incremental build is stale."""

from __future__ import annotations

import duckdb
import pytest

from clv_platform.lib.fingerprint import INCREMENTAL_SOURCES, full_refresh_reason, incremental_state, input_fingerprint
from clv_platform.lib.ingestion import ensure_table

LINE = (
    "insert into raw.transactions "
    "(invoice_no, stock_code, description, quantity, invoice_date, unit_price, customer_id, country) "
)


@pytest.fixture
def con():
    con = duckdb.connect()
    for table in ("raw.transactions", "raw.behavioral_events"):
        ensure_table(con, table)
    for day, price in (("2025-01-01", 2.0), ("2025-01-02", 3.0), ("2025-01-03", 4.0)):
        con.execute(LINE + f"values ('1', 'A', 'a', 1, TIMESTAMP '{day} 10:00:00', {price}, 'c1', 'UK')")
    con.execute("create schema intermediate")
    con.execute("create table intermediate.int_transaction_lines as select invoice_date from raw.transactions")
    con.execute("create table intermediate.int_customer_session_days (activity_date date)")
    con.execute("create table intermediate.int_customer_days (customer_id varchar)")
    yield con
    con.close()


def test_input_fingerprint_changes_with_a_corrected_day_before_the_bound_only(con):
    before = input_fingerprint(con, "2025-01-03")
    assert before == input_fingerprint(con, "2025-01-03")
    assert "raw.transactions 2025-01-01..2025-01-02: 2 rows" in before
    con.execute("update raw.transactions set unit_price = 9 where invoice_date >= '2025-01-03'")
    assert input_fingerprint(con, "2025-01-03") == before  # the day at the bound was not read
    con.execute("update raw.transactions set unit_price = 9 where invoice_date < '2025-01-02'")
    assert input_fingerprint(con, "2025-01-03") != before


def test_full_refresh_reason_names_what_changed(con):
    definitions = "abc"
    recorded = {**incremental_state(con, lookback_days=1), "definition_fingerprint": definitions}
    assert recorded[INCREMENTAL_SOURCES[0].metadata_key] == "2025-01-02"
    assert full_refresh_reason(con, recorded, definitions) is None
    assert full_refresh_reason(con, {}, definitions) == "no earlier build recorded its incremental boundaries"
    assert "definitions" in full_refresh_reason(con, recorded, "other")
    con.execute("update raw.transactions set quantity = 5 where invoice_date >= '2025-01-02'")  # inside the lookback
    assert full_refresh_reason(con, recorded, definitions) is None
    con.execute("update raw.transactions set quantity = 5 where invoice_date < '2025-01-02'")
    assert full_refresh_reason(con, recorded, definitions) == (
        "raw rows changed since the last build: raw.transactions dated before 2025-01-02"
    )
    con.execute("drop table intermediate.int_customer_days")
    assert full_refresh_reason(con, recorded, definitions) == "intermediate.int_customer_days does not exist"
