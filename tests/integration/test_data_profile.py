"""monitoring/data_profile materialized alone against a hand-made raw layer in a temporary DuckDB.

The raw assets it depends on are not materialized here (deps do not block); the tables they would
write are created directly, one quarantine table present and one absent.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from clv_platform.defs.monitoring.profile import data_profile

pytestmark = pytest.mark.integration

RAW_LAYER = """
create schema raw;
create table raw.transactions as select * from (values
    ('536365', '85123A', 'WHITE HANGING HEART', 6, timestamp '2010-12-01 08:26', 2.55, '17850', 'United Kingdom'),
    ('536366', '22633', '<script>alert(1)</script>', 6, timestamp '2010-12-01 08:28', 1.85, '17850', 'United Kingdom'),
    ('C536379', 'D', 'Discount', -1, timestamp '2010-12-01 09:41', 27.50, null, 'France')
) t(invoice_no, stock_code, description, quantity, invoice_date, unit_price, customer_id, country);
create table raw.behavioral_events as select * from (values
    ('e1', 's1', '17850', 'page_view', timestamp '2010-12-01 08:20'),
    ('e2', 's1', '17850', 'add_to_cart', timestamp '2010-12-01 08:24')
) t(event_id, session_id, customer_id, event_type, event_timestamp);
create table raw.customers as select * from (values
    ('17850', 'United Kingdom', 'organic', date '2010-11-01')
) t(customer_id, country, acquisition_channel, signup_date);
create table raw.transactions_quarantine as select * from (values
    ('536367', 'X', null, 0, null::timestamp, -1.0, '1', 'Nowhere', 'unit_price below zero')
) t(invoice_no, stock_code, description, quantity, invoice_date, unit_price, customer_id, country, reason);
"""


def _materialize(database: Path) -> dg.ExecuteInProcessResult:
    return dg.materialize([data_profile], resources={"warehouse": DuckDBResource(database=str(database))}, raise_on_error=False)


def test_profiles_every_raw_table_and_links_the_report(clv_state, tmp_path):
    database = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(database)) as con:
        con.execute(RAW_LAYER)

    result = _materialize(database)
    assert result.success
    (event,) = result.get_asset_materialization_events()
    metadata = {key: value.value for key, value in event.materialization.metadata.items()}

    present = ["raw.transactions", "raw.behavioral_events", "raw.customers", "raw.transactions_quarantine"]
    assert metadata["row_counts"] == dict(zip(present, [3, 2, 1, 1], strict=True))
    assert (metadata["raw_transactions_rows"], metadata["raw_transactions_quarantine_rows"]) == (3, 1)
    assert metadata["tables_profiled"] == present
    assert metadata["tables_absent"] == ["raw.behavioral_events_quarantine"]
    transactions_md = metadata["raw_transactions_profile"]
    assert "| customer_id | VARCHAR | 2 | 1 (33.3%) | 1 |" in transactions_md
    assert "United Kingdom: 2 (66.7%); France: 1 (33.3%)" in transactions_md
    assert "event_type" in metadata["raw_behavioral_events_profile"]
    assert "reason" in metadata["raw_transactions_quarantine_profile"]

    report = Path(metadata["report_path"])
    assert report.is_file() and report.parent == clv_state / "reports" / "data_profile"
    assert metadata["report"] == report.as_uri()
    page = report.read_text(encoding="utf-8")
    for table in present:
        assert f"<h2>{table}</h2>" in page
    assert "raw.behavioral_events_quarantine" in page  # named as not profiled
    assert "&lt;script&gt;" in page and "<script" not in page


def test_fails_when_there_is_nothing_to_profile(clv_state, tmp_path):
    database = tmp_path / "empty.duckdb"
    duckdb.connect(str(database)).close()
    result = _materialize(database)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "nothing to profile" in failure.event_specific_data.error.message
