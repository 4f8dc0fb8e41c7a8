"""raw/transactions from files, materialized for real: the UCI log accounted for line by line,
partition re-runs that replace exactly their days, privacy checked in the DuckDB file's bytes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from clv_platform.lib.ingestion import RawSource

pytestmark = pytest.mark.integration

UCI = Path(__file__).resolve().parents[3] / "shared" / "data" / "online_retail.csv.gz"
TRANSACTIONS = dg.AssetKey(["raw", "transactions"])


@pytest.fixture
def load(materialize_raw, tmp_path):
    """``load(spec_yaml, first, last)``: the spec written to ``tmp_path/source.yaml``, raw/transactions loaded for
    [first, last] into ``tmp_path/warehouse.duckdb``; a failed run is returned, not raised."""

    def load(spec_yaml: str, first: str, last: str) -> dg.ExecuteInProcessResult:
        spec = tmp_path / "source.yaml"
        spec.write_text(textwrap.dedent(spec_yaml))
        return materialize_raw(spec, tmp_path / "warehouse.duckdb", first, last, raise_on_error=False)

    return load


def _meta(result: dg.ExecuteInProcessResult, key: dg.AssetKey = TRANSACTIONS) -> dict:
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == key]
    return {k: v.value for k, v in events[0].materialization.metadata.items()}


def _query(database: Path, sql: str):
    with duckdb.connect(str(database), read_only=True) as con:
        return con.execute(sql).fetchall()


@pytest.mark.skipif(not UCI.exists(), reason=f"{UCI} (the real UCI log) is not beside the checkout")
def test_uci_log_is_accounted_for_line_by_line_and_partitions_replace_exactly(clv_state, tmp_path, load):
    database = tmp_path / "warehouse.duckdb"
    spec = f"""
        transactions: {{kind: files, path: {UCI}, preset: online_retail}}
    """
    result = load(spec, "2010-12-01", "2011-12-09")
    assert result.success
    meta = _meta(result)
    # The published count: 541,909 lines, each accepted or quarantined with a reason.
    assert meta["rows_read_from_source"] == meta["rows_read"] == 541_909
    assert meta["rows_accepted"] + meta["rows_quarantined"] == 541_909
    ((stored,),) = _query(database, "select count(*) from raw.transactions")
    rules = dict(_query(database, "select rule, count(*) from raw.transactions_quarantine group by rule"))
    assert stored == meta["rows_accepted"] and sum(rules.values()) == meta["rows_quarantined"]
    # 135,080 lines have no CustomerID; 5,268 exact duplicates, 43 of them guest lines counted above.
    assert rules == {"customer_id_present": 135_080, "duplicate_line": 5_225}
    assert stored == 541_909 - 135_080 - 5_225
    # Every quarantined row names where it came from.
    assert _query(
        database, "select count(*) from raw.transactions_quarantine where source is null or source_row < 2 or rule is null"
    ) == [(0,)]
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert all(checks.values()) and "countries_stable" in checks

    # One day again: exactly that day is replaced, nothing doubles, nothing is lost.
    day = "select count(*) from raw.transactions where invoice_date >= '2011-01-05' and invoice_date < '2011-01-06'"
    ((before,),) = _query(database, day)
    again = load(spec, "2011-01-05", "2011-01-05")
    assert again.success
    assert _query(database, day) == [(before,)] and before > 0
    assert _query(database, "select count(*) from raw.transactions") == [(stored,)]
    assert dict(_query(database, "select rule, count(*) from raw.transactions_quarantine group by rule")) == rules
    assert _meta(again)["rows_accepted"] == before
    assert _meta(again)["rows_outside_partitions"] == 541_909 - before - _meta(again)["rows_quarantined"]


LOG = """\
customer,day,total
CUST-SECRET-0001,2024-03-01,12.50
CUST-SECRET-0002,2024-03-01,7.00
CUST-SECRET-0001,2024-03-05,-2.50
CUST-SECRET-0003,2024-03-06,abc
"""


# A log of customer, date and amount only: the mapping is all it needs.
SALES_SPEC = "transactions: {kind: files, path: sales.csv, columns: {customer_id: customer, invoice_date: day, amount: total}}\n"


@pytest.mark.parametrize("pii", [True, False], ids=["hmac", "plain"])
def test_hashed_customer_ids_never_reach_the_warehouse_file(clv_state, tmp_path, load, monkeypatch, pii):
    (tmp_path / "sales.csv").write_text(LOG)
    monkeypatch.setenv("CLV_PII_KEY", "test-key-not-secret")
    database = tmp_path / "warehouse.duckdb"
    spec = SALES_SPEC + ("pii: {columns: {customer_id: hmac}}\n" if pii else "")
    result = load(spec, "2024-03-01", "2024-03-06")
    assert result.success
    assert _query(database, "select count(*) from raw.transactions") == [(3,)]
    assert _query(database, "select rule, column_name from raw.transactions_quarantine") == [("amount_numeric", "total")]
    with duckdb.connect(str(database)) as con:
        con.execute("checkpoint")
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("warehouse.duckdb*"))
    found = [cid for cid in (b"CUST-SECRET-0001", b"CUST-SECRET-0002", b"CUST-SECRET-0003") if cid in stored]
    if pii:
        assert found == []
        ids = {r[0] for r in _query(database, "select distinct customer_id from raw.transactions")}
        assert len(ids) == 2 and all(len(i) == 32 for i in ids)
    else:
        # The control: without the rule the raw ids are in the file, so the search above can fail.
        assert found == [b"CUST-SECRET-0001", b"CUST-SECRET-0002", b"CUST-SECRET-0003"]


def test_mostly_bad_input_fails_the_blocking_quarantine_check(clv_state, tmp_path, load):
    rows = ["customer,day,total"] + [f"c{i},2024-03-01,{'x' if i % 10 else 5}" for i in range(100)]
    (tmp_path / "sales.csv").write_text("\n".join(rows) + "\n")
    result = load(SALES_SPEC, "2024-03-01", "2024-03-01")
    failed = {e.check_name: e.description for e in result.get_asset_check_evaluations() if not e.passed}
    assert list(failed) == ["quarantine_share_within_limit"]
    assert "90.0% of the rows were quarantined" in failed["quarantine_share_within_limit"]


def test_unreadable_input_is_one_line_and_changes_nothing(clv_state, tmp_path, load):
    (tmp_path / "sales.csv").write_text("customer;day;total\nc1;2024-03-01;5\n")
    database = tmp_path / "warehouse.duckdb"
    result = load(SALES_SPEC, "2024-03-01", "2024-03-01")
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure).event_specific_data.error
    message = failure.message.strip().splitlines()[-1]
    assert (
        "sales.csv: row 1: column 'customer'" in message
        and "wrong delimiter?" in message
        and "(rule: required_column)" in message
    )
    failed = {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}
    assert "schema_matches_contract" in failed
    assert not database.exists() or _query(
        database, "select count(*) from information_schema.tables where table_name = 'transactions'"
    ) == [(0,)]


def test_volume_order_value_and_country_changes_fail_their_checks(clv_state, tmp_path, load):
    header = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
    week_one = [f"{i},A,x,1,2024-03-01 10:00:00,5.0,c{i},France" for i in range(5)]
    # A week later, same weekday: 20x the lines, orders worth 100x, all from a country never seen.
    week_two = [f"{100 + i},A,x,100,2024-03-08 10:00:00,5.0,c{i},Peru" for i in range(100)]
    (tmp_path / "orders.csv").write_text("\n".join([header, *week_one, *week_two]) + "\n")
    spec = "transactions: {kind: files, path: orders.csv, preset: online_retail}\n"
    assert load(spec, "2024-03-01", "2024-03-01").success
    result = load(spec, "2024-03-08", "2024-03-08")
    failed = {e.check_name: e.description for e in result.get_asset_check_evaluations() if not e.passed}
    assert set(failed) == {"volume_change_within_limit", "mean_order_value_stable", "countries_stable"}
    assert "20.00x" in failed["volume_change_within_limit"] and "100.00x" in failed["mean_order_value_stable"]
    assert "['Peru']" in failed["countries_stable"]


def test_empty_input_fails_its_blocking_check_and_keeps_the_stored_days(clv_state, tmp_path, load):
    database = tmp_path / "warehouse.duckdb"
    (tmp_path / "sales.csv").write_text("customer,day,total\nc1,2024-03-01,5\n")
    assert load(SALES_SPEC, "2024-03-01", "2024-03-01").success
    (tmp_path / "sales.csv").write_text("customer,day,total\n")  # header only
    result = load(SALES_SPEC, "2024-03-01", "2024-03-01")
    assert not result.success
    failed = {e.check_name: e.description for e in result.get_asset_check_evaluations() if not e.passed}
    assert list(failed) == ["input_not_empty"] and "delivered no rows" in failed["input_not_empty"]
    assert _query(database, "select count(*) from raw.transactions") == [(1,)]


def test_customer_feed_and_a_new_acquisition_channel(clv_state, tmp_path, load):
    from clv_platform.defs.ingestion.assets import raw_customers

    (tmp_path / "sales.csv").write_text("customer,day,total\n" + "".join(f"c{i},2024-03-01,5\n" for i in range(20)))
    database = tmp_path / "warehouse.duckdb"
    feed = tmp_path / "crm.csv"
    spec = SALES_SPEC + "customers: {kind: files, path: crm.csv, columns: {customer_id: id, acquisition_channel: channel}}\n"
    assert load(spec, "2024-03-01", "2024-03-01").success

    def customers(channels):
        feed.write_text("id,channel\n" + "".join(f"c{i},{c}\n" for i, c in enumerate(channels)) + ",orphan\n")
        return dg.materialize(
            [raw_customers],
            resources={
                "raw_source": RawSource(spec_path=str(tmp_path / "source.yaml")),
                "warehouse": DuckDBResource(database=str(database)),
            },
            raise_on_error=False,
        )

    first = customers(["email"] * 10 + ["search"] * 10)
    meta = _meta(first, dg.AssetKey(["raw", "customers"]))
    assert meta["dagster/row_count"] == 20 and meta["feed_rows_dropped"]["without_customer_id"] == 1
    # Signup dates the feed lacks come from the first purchase.
    assert _query(database, "select count(*) from raw.customers where signup_date = '2024-03-01'") == [(20,)]
    # Half the customers now come from a channel never seen before: the blocking check fails.
    second = customers(["email"] * 10 + ["tiktok"] * 10)
    failed = {e.check_name: e.description for e in second.get_asset_check_evaluations() if not e.passed}
    assert list(failed) == ["acquisition_channels_stable"] and "['tiktok']" in failed["acquisition_channels_stable"]
