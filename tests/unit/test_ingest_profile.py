"""Column profiles on a hand-made table whose statistics are counted by hand below."""

import doctest
import math
import subprocess
import sys
from datetime import date, datetime
from decimal import Decimal

import duckdb
import pytest

from clv_platform.ingest import profile as profile_module
from clv_platform.ingest.profile import display_frame, profile_table, profile_tables, render_profile_html
from clv_platform.lib.warehouse import markdown_table

SCRIPT = "<script>alert(1)</script>"
ORDERS_COLUMNS = ["order_id", "country", "amount", "placed_at", "note"]
ORDERS = [
    # order_id, country, amount, placed_at, note
    (1, "UK", 10.0, "2024-01-01", "a"),
    (2, "UK", 20.0, "2024-01-02", "a"),
    (3, "UK", 30.0, "2024-01-03", None),
    (4, "DE", 40.0, "2024-01-04", None),
    (5, "DE", None, "2024-01-05", None),
    (6, "FR", None, "2024-01-06", None),
    (7, None, 50.0, "2024-01-07", SCRIPT),
    (8, "UK", 50.0, None, None),
]


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute("create schema raw")
    con.execute("create table raw.orders (order_id integer, country varchar, amount double, placed_at timestamp, note varchar)")
    con.executemany("insert into raw.orders values (?, ?, ?, ?, ?)", ORDERS)
    yield con
    con.close()


@pytest.fixture
def orders(con):
    return profile_table(con, "raw.orders", top_n=3).set_index("column")


def test_counts_nulls_and_distinct(orders):
    assert orders.index.tolist() == ["order_id", "country", "amount", "placed_at", "note"]
    assert orders["type"].tolist() == ["INTEGER", "VARCHAR", "DOUBLE", "TIMESTAMP", "VARCHAR"]
    assert set(orders["rows"]) == {8}
    assert orders["non_null"].to_dict() == {"order_id": 8, "country": 7, "amount": 6, "placed_at": 7, "note": 3}
    assert orders["nulls"].to_dict() == {"order_id": 0, "country": 1, "amount": 2, "placed_at": 1, "note": 5}
    assert orders.loc["amount", "null_share"] == 0.25
    assert orders.loc["note", "null_share"] == 5 / 8
    assert orders["distinct"].to_dict() == {"order_id": 8, "country": 3, "amount": 5, "placed_at": 7, "note": 2}


def test_numeric_statistics_by_hand(orders):
    amount = orders.loc["amount"]
    assert (amount["min"], amount["max"]) == (10.0, 50.0)
    # 10, 20, 30, 40, 50, 50: mean 200/6; squared deviations sum to 1333.33, over n-1 = 5
    assert amount["mean"] == pytest.approx(200 / 6)
    assert amount["std"] == pytest.approx(math.sqrt(4000 / 3 / 5))
    # interpolated at position p * (n - 1) = p * 5 of the sorted values
    assert [amount[q] for q in ("p01", "p25", "p50", "p75", "p99")] == pytest.approx([10.5, 22.5, 35.0, 47.5, 50.0])
    order_id = orders.loc["order_id"]
    assert (order_id["min"], order_id["max"], order_id["mean"], order_id["p50"], order_id["p25"]) == (1, 8, 4.5, 4.5, 2.75)


def test_timestamp_percentiles_are_observed_values(orders):
    placed = orders.loc["placed_at"]
    assert (placed["min"], placed["max"]) == (datetime(2024, 1, 1), datetime(2024, 1, 7))
    # 7 days: the smallest value whose cumulative share reaches p (1/7, 2/7, 4/7, 6/7, 7/7)
    days = [placed[q].day for q in ("p01", "p25", "p50", "p75", "p99")]
    assert days == [1, 2, 4, 6, 7]
    assert math.isnan(placed["mean"]) and math.isnan(placed["std"])


def test_top_values_with_counts_and_shares_of_all_rows(orders):
    assert orders.loc["country", "top_values"] == "UK: 4 (50.0%); DE: 2 (25.0%); FR: 1 (12.5%)"
    # ties (10, 20, 30, 40 once each) broken by value; the rest counted
    assert orders.loc["amount", "top_values"] == "50: 2 (25.0%); 10: 1 (12.5%); 20: 1 (12.5%); +2 more values"
    assert orders.loc["note", "top_values"] == f"a: 2 (25.0%); {SCRIPT}: 1 (12.5%)"
    assert orders.loc["order_id", "top_values"] == "every value distinct (8)"
    assert orders.loc["country", "p50"] is None and (orders.loc["country", "min"], orders.loc["country", "max"]) == ("DE", "UK")


def test_empty_and_all_null_columns_and_odd_types():
    con = duckdb.connect()
    con.execute(
        'create table odd ("select" integer, "two words" varchar, price decimal(10, 2), day date, flag boolean, '
        "tags varchar[], point struct(x integer))"
    )
    empty = profile_table(con, "odd")
    assert empty["rows"].tolist() == [0] * 7 and empty["distinct"].tolist() == [0] * 7
    assert empty["top_values"].tolist() == [""] * 7 and empty["null_share"].isna().all()

    con.execute(
        "insert into odd values (null, 'x', 1.50, date '2024-03-01', true, ['a'], {'x': 1}), "
        "(null, 'x', 2.50, date '2024-03-03', false, ['a'], {'x': 1})"
    )
    odd = profile_table(con, "odd").set_index("column")
    assert odd.loc["select", "nulls"] == 2 and odd.loc["select", "top_values"] == ""
    assert odd.loc["two words", "top_values"] == "x: 2 (100.0%)"
    assert (odd.loc["price", "min"], odd.loc["price", "mean"], odd.loc["price", "p50"]) == (Decimal("1.50"), 2.0, 2.0)
    assert (odd.loc["day", "min"], odd.loc["day", "p99"]) == (date(2024, 3, 1), date(2024, 3, 3))
    assert odd.loc["flag", "top_values"] == "false: 1 (50.0%); true: 1 (50.0%)"
    assert odd.loc["tags", "top_values"] == "[a]: 2 (100.0%)"
    assert odd.loc["point", "distinct"] == 1


def test_missing_table_and_bad_top_n(con):
    with pytest.raises(ValueError, match=r"table raw.nope does not exist"):
        profile_table(con, "raw.nope")
    with pytest.raises(ValueError, match="top_n must be at least 1"):
        profile_table(con, "raw.orders", top_n=0)
    profiles, absent = profile_tables(con, ["raw.orders", "raw.orders_quarantine"])
    assert list(profiles) == ["raw.orders"] and absent == ["raw.orders_quarantine"]


def test_html_report_is_self_contained_and_escaped(orders):
    page = render_profile_html(
        {"raw.orders": orders.reset_index()}, "Raw <profile>", datetime(2024, 1, 8, 6, 0), notes=["skipped raw.x & raw.y"]
    )
    for column in ORDERS_COLUMNS:
        assert f"<td>{column}</td>" in page
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<title>Raw &lt;profile&gt;</title>" in page and "skipped raw.x &amp; raw.y" in page
    assert "8 rows, 5 columns" in page and "2024-01-08 06:00:00" in page
    assert "UK: 4 (50.0%); DE: 2 (25.0%); FR: 1 (12.5%)" in page
    assert "http" not in page and "src=" not in page and "<link" not in page


def test_markdown_rendering_keeps_one_cell_per_value(con):
    con.execute("insert into raw.orders values (9, 'UK', 1.0, null, 'a | b\nc')")
    shown = display_frame(profile_table(con, "raw.orders"))
    assert shown.set_index("column").loc["amount", "nulls"] == "2 (22.2%)"
    table = markdown_table(shown)
    lines = table.splitlines()
    assert len(lines) == 2 + len(ORDERS_COLUMNS)
    cells_per_line = {line.replace("\\|", "").count("|") for line in lines}
    assert cells_per_line == {len(shown.columns) + 1}
    assert "a \\| b c" in table and "&lt;script>" in table


def test_docstring_example_runs():
    assert doctest.testmod(profile_module).failed == 0


def test_ingest_package_does_not_import_dagster():
    code = "import sys, clv_platform.ingest.profile; print('dagster' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
