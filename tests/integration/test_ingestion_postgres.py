"""raw/transactions from a PostgreSQL table, materialized for real against the session's server.

A single-day run reads only that day from PostgreSQL; rows inserted or updated there reach the
warehouse when their day is re-materialized, replacing the old ones and touching no other day.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import psycopg
import pytest

pytestmark = pytest.mark.integration

TRANSACTIONS = dg.AssetKey(["raw", "transactions"])
DSN_ENV = "CLV_TEST_ROBUST_PG_DSN"
SCHEMA = "robust_shop"
FIRST, LAST = date(2024, 3, 1), date(2024, 3, 7)
DAYS = [FIRST + timedelta(days=d) for d in range((LAST - FIRST).days + 1)]
COUNTRIES = ("United Kingdom", "Germany", "France")
# canonical name -> the shop's column
MAPPING = {
    "invoice_no": "order_id",
    "stock_code": "sku",
    "description": "title",
    "quantity": "qty",
    "invoice_date": "ordered_at",
    "unit_price": "price",
    "customer_id": "customer",
    "country": "country",
}
COLUMNS = ("invoice_no", "stock_code", "description", "quantity", "invoice_date", "unit_price", "customer_id", "country")


def _orders() -> list[tuple]:
    """Order lines over seven days, a different number each day (12, 15, ..., 30), every line valid."""
    rows = []
    for d, day in enumerate(DAYS):
        for i in range(12 + 3 * d):
            at = datetime.combine(day, datetime.min.time()) + timedelta(minutes=7 + 113 * i % 1430)
            rows.append(
                (
                    f"o{d}{i:03d}",
                    f"sku{i % 9}",
                    f"product {i % 9}",
                    1 + i % 4,
                    at,
                    round(2.5 + (i % 11) * 1.25, 2),
                    f"c{(d + i) % 17:02d}",
                    COUNTRIES[i % 3],
                )
            )
    return rows


ORDERS = _orders()


def _day_of(row: tuple) -> date:
    return row[4].date()


def _pg(dsn: str, *statements: tuple[str, list | None]) -> None:
    with psycopg.connect(dsn, autocommit=True) as con, con.cursor() as cur:
        for statement, params in statements:
            cur.execute(statement, params)


@pytest.fixture
def shop(postgres_dsn, monkeypatch, tmp_path) -> Iterator[tuple[str, Path]]:
    """A fresh ``robust_shop.orders`` filled with ORDERS, its spec file and DSN variable; yields (DSN, spec)."""
    with psycopg.connect(postgres_dsn, autocommit=True) as con:
        con.execute(f"drop schema if exists {SCHEMA} cascade")
        con.execute(f"create schema {SCHEMA}")
        con.execute(
            f"create table {SCHEMA}.orders (order_id text not null, sku text not null, title text, qty integer, "
            "ordered_at timestamp, price numeric(10, 2), customer text, country text, primary key (order_id, sku))"
        )
        with con.cursor() as cur:
            cur.executemany(f"insert into {SCHEMA}.orders values (%s, %s, %s, %s, %s, %s, %s, %s)", ORDERS)
    monkeypatch.setenv(DSN_ENV, postgres_dsn)
    spec = tmp_path / "source.yaml"
    mapping = ", ".join(f"{k}: {v}" for k, v in MAPPING.items())
    spec.write_text(f"transactions: {{kind: postgres, table: {SCHEMA}.orders, dsn_env: {DSN_ENV}, columns: {{{mapping}}}}}\n")
    yield postgres_dsn, spec
    with psycopg.connect(postgres_dsn, autocommit=True) as con:
        con.execute(f"drop schema if exists {SCHEMA} cascade")


@pytest.fixture
def load(materialize_raw, shop, tmp_path):
    """``load(first, last)``: raw/transactions from the shop for [first, last] in one run; the run's metadata."""
    _, spec = shop

    def load(first: date, last: date) -> dict:
        result = materialize_raw(spec, tmp_path / "warehouse.duckdb", first, last)
        assert result.success
        events = [e for e in result.get_asset_materialization_events() if e.asset_key == TRANSACTIONS]
        # One run, one materialization per day of the range, each with the run's metadata.
        assert [e.partition for e in events] == [str(first + timedelta(days=d)) for d in range((last - first).days + 1)]
        meta = {k: v.value for k, v in events[0].materialization.metadata.items()}
        # read = accepted + quarantined (+ outside the run's days).
        assert meta["rows_read_from_source"] == meta["rows_accepted"] + meta["rows_quarantined"] + meta["rows_outside_partitions"]
        return meta

    return load


def _stored(database: Path, where: str = "true") -> list[tuple]:
    """The stored lines (canonical columns plus _loaded_at), sorted."""
    with duckdb.connect(str(database), read_only=True) as con:
        return con.execute(
            f"select {', '.join(COLUMNS)}, _loaded_at from raw.transactions where {where} order by invoice_no, stock_code"
        ).fetchall()


def _on(day: date) -> str:
    return f"invoice_date >= '{day}' and invoice_date < '{day + timedelta(days=1)}'"


def _off(*days: date) -> str:
    return " and ".join(f"not ({_on(day)})" for day in days)


def _lines(rows) -> list[tuple]:
    """Canonical values of stored rows or of PostgreSQL rows, comparable with each other."""
    return sorted((r[0], r[1], r[2], int(r[3]), r[4], float(r[5]), r[6], r[7]) for r in rows)


def _per_day(database: Path) -> dict[date, int]:
    with duckdb.connect(str(database), read_only=True) as con:
        return dict(con.execute("select invoice_date::date, count(*) from raw.transactions group by 1").fetchall())


def test_single_day_run_reads_only_that_day_and_replaces_only_it(load, tmp_path):
    database = tmp_path / "warehouse.duckdb"
    full = load(FIRST, LAST)
    assert full["rows_read_from_source"] == full["rows_accepted"] == len(ORDERS) and full["rows_quarantined"] == 0
    assert _lines(_stored(database)) == _lines(ORDERS)
    expected_per_day = Counter(_day_of(r) for r in ORDERS)
    assert _per_day(database) == expected_per_day and len(set(expected_per_day.values())) == len(DAYS)

    before = _stored(database)
    day = date(2024, 3, 4)
    again = load(day, day)
    # Only that day's rows came from PostgreSQL: the reader filtered by the window, not the asset.
    assert again["rows_read_from_source"] == again["rows_accepted"] == expected_per_day[day] == 21
    assert again["rows_outside_partitions"] == 0
    assert (again["window_start"], again["window_end"]) == ("2024-03-04", "2024-03-05")
    # The day was replaced (same lines, nothing doubled); every other day is untouched, row for row.
    assert _lines(_stored(database, _on(day))) == _lines(r for r in ORDERS if _day_of(r) == day)
    assert _stored(database, _off(day)) == [r for r in before if r[4].date() != day]
    assert len(_stored(database)) == len(ORDERS)


def test_rows_inserted_in_postgres_appear_when_their_day_is_rematerialized(shop, load, tmp_path):
    dsn, _ = shop
    database = tmp_path / "warehouse.duckdb"
    load(FIRST, LAST)
    day, other = date(2024, 3, 5), date(2024, 3, 6)
    added = [(f"new{i}", "sku-new", "new product", 2, datetime(2024, 3, 5, 10 + i), 9.99, "c99", "Germany") for i in range(4)]
    added_other = [("late1", "sku-new", "new product", 1, datetime(2024, 3, 6, 9), 4.5, "c98", "France")]
    _pg(dsn, *((f"insert into {SCHEMA}.orders values (%s, %s, %s, %s, %s, %s, %s, %s)", list(r)) for r in added + added_other))
    before = _stored(database)

    meta = load(day, day)
    in_pg = [r for r in ORDERS if _day_of(r) == day] + added
    assert meta["rows_read_from_source"] == meta["rows_accepted"] == len(in_pg) == 28
    assert _lines(_stored(database, _on(day))) == _lines(in_pg)
    # The row added to another day waits for that day's run; nothing else changed.
    assert _stored(database, _off(day)) == [r for r in before if r[4].date() != day]
    assert _stored(database, "invoice_no = 'late1'") == []
    assert len(_stored(database)) == len(ORDERS) + len(added)

    load(other, other)
    assert [r[0] for r in _stored(database, "invoice_no = 'late1'")] == ["late1"]
    assert len(_stored(database)) == len(ORDERS) + len(added) + len(added_other)


def test_rows_updated_in_postgres_replace_the_old_ones(shop, load, tmp_path):
    dsn, _ = shop
    database = tmp_path / "warehouse.duckdb"
    load(FIRST, LAST)
    day, next_day = date(2024, 3, 2), date(2024, 3, 3)
    _pg(
        dsn,
        # Corrected prices and quantities of the day's first three orders,
        (f"update {SCHEMA}.orders set price = price + 1, qty = qty + 1 where order_id in ('o1000', 'o1001', 'o1002')", None),
        # an order whose customer was deleted (a row rule breaks: it goes to the quarantine),
        (f"update {SCHEMA}.orders set customer = null where order_id = 'o1003'", None),
        # and an order moved to the next day.
        (f"update {SCHEMA}.orders set ordered_at = ordered_at + interval '1 day' where order_id = 'o1004'", None),
    )
    with psycopg.connect(dsn) as con:
        current = con.execute(f"select {', '.join(MAPPING.values())} from {SCHEMA}.orders").fetchall()

    # Re-materializing both days (one run) puts every changed row where PostgreSQL has it now.
    meta = load(day, next_day)
    in_window = [r for r in current if r[4].date() in (day, next_day)]
    assert meta["rows_read_from_source"] == len(in_window) == 15 + 18
    assert (meta["rows_accepted"], meta["rows_quarantined"]) == (len(in_window) - 1, 1)
    stored = _stored(database)
    assert _lines(stored) == _lines(r for r in current if r[6] is not None)
    keys = Counter((r[0], r[1]) for r in stored)
    assert max(keys.values()) == 1  # no line twice
    updated = {r[0]: (r[3], r[5]) for r in stored if r[0] in ("o1000", "o1001", "o1002")}
    original = {r[0]: (r[3], float(r[5])) for r in ORDERS if r[0] in updated}
    assert updated == {k: (q + 1, p + 1) for k, (q, p) in original.items()}
    assert [r[4].date() for r in stored if r[0] == "o1004"] == [next_day]
    with duckdb.connect(str(database), read_only=True) as con:
        quarantined = con.execute(
            "select rule, partition_date::date, json_extract_string(record, '$.invoice_no') from raw.transactions_quarantine"
        ).fetchall()
    assert quarantined == [("customer_id_present", day, "o1003")]

    # Again: nothing doubles, in the table or in the quarantine.
    load(day, next_day)
    assert _lines(_stored(database)) == _lines(stored)
    with duckdb.connect(str(database), read_only=True) as con:
        assert con.execute("select count(*) from raw.transactions_quarantine").fetchone() == (1,)


def test_timestamptz_column_read_by_utc_days_whatever_the_session_time_zone(shop, load, tmp_path, monkeypatch):
    """A server whose time zone is not UTC must not shift the daily windows (rows near midnight were lost)."""
    dsn, _ = shop
    _pg(dsn, (f"alter table {SCHEMA}.orders alter column ordered_at type timestamptz using ordered_at at time zone 'UTC'", None))
    # The server's (or the role's) default time zone, as libpq passes it on.
    monkeypatch.setenv(DSN_ENV, f"{dsn}?options=-c%20TimeZone%3DAmerica/New_York")
    database = tmp_path / "warehouse.duckdb"
    per_day = Counter(_day_of(r) for r in ORDERS)
    days = DAYS[1:4]
    for day in days:
        meta = load(day, day)
        assert (meta["rows_read_from_source"], meta["rows_accepted"], meta["rows_outside_partitions"]) == (
            per_day[day],
            per_day[day],
            0,
        )
    assert _lines(_stored(database)) == _lines(r for r in ORDERS if _day_of(r) in days)
