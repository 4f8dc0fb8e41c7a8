"""read_postgres against a real PostgreSQL server (the session's ``postgres_dsn``): tables, queries,
half-open daily windows, and the one-line errors a user sees for a bad DSN, a missing table or variable."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from itertools import pairwise

import numpy as np
import pandas as pd
import psycopg
import pytest

from clv_platform.ingest.readers import SourceError, iter_source, read_postgres
from clv_platform.ingest.spec import SourceSpec

pytestmark = pytest.mark.integration

DSN_ENV = "CLV_TEST_POSTGRES_DSN"
DAY1 = datetime(2024, 3, 1)
WINDOW_START, WINDOW_END = datetime(2024, 3, 3), datetime(2024, 3, 4)
COUNTRIES = ("United Kingdom", "Germany", "United States", "France")


def _orders() -> list[tuple]:
    """300 orders, one every 37 minutes from 1 March 2024, plus three on the window's edges."""
    rows = [
        (
            f"o{i:04d}",
            f"c{i % 23:02d}",
            DAY1 + timedelta(minutes=37 * i),
            1 + i % 5,
            round(1.25 + (i % 40) * 0.5, 2),
            COUNTRIES[i % len(COUNTRIES)],
        )
        for i in range(300)
    ]
    rows += [
        ("edge-start", "c01", WINDOW_START, 2, 19.99, "Germany"),
        ("edge-before-end", "c02", WINDOW_END - timedelta(microseconds=1), 1, 5.10, "France"),
        ("edge-end", "c03", WINDOW_END, 4, None, "Germany"),
    ]
    return rows


ORDERS = _orders()


def _ids_between(start: datetime | None, end: datetime | None) -> list[str]:
    inside = [r for r in ORDERS if (start is None or r[2] >= start) and (end is None or r[2] < end)]
    return [r[0] for r in sorted(inside, key=lambda r: r[2])]


@pytest.fixture(scope="module")
def shop_dsn(postgres_dsn) -> str:
    """The session's database with ``shop.orders`` filled once for this module."""
    with psycopg.connect(postgres_dsn, autocommit=True) as con:
        con.execute("create schema shop")
        con.execute(
            "create table shop.orders (order_id text primary key, customer text not null, "
            "ordered_at timestamp not null, qty integer not null, price numeric(10, 2), country text)"
        )
        with con.cursor() as cur:
            cur.executemany("insert into shop.orders values (%s, %s, %s, %s, %s, %s)", ORDERS)
    return postgres_dsn


@pytest.fixture
def dsn_env(shop_dsn, monkeypatch) -> Iterator[str]:
    monkeypatch.setenv(DSN_ENV, shop_dsn)
    yield DSN_ENV


def test_whole_table_arrives_in_time_order_with_numeric_as_float(dsn_env):
    [source] = list(iter_source(SourceSpec(kind="postgres", table="shop.orders", dsn_env=dsn_env), "ordered_at"))
    frame = source.frame
    assert source.name == "postgresql:shop.orders"
    assert list(frame.columns) == ["order_id", "customer", "ordered_at", "qty", "price", "country"]
    assert frame["order_id"].tolist() == _ids_between(None, None)
    assert source.rows.tolist() == list(range(1, len(ORDERS) + 1))
    assert pd.api.types.is_datetime64_dtype(frame["ordered_at"])
    assert frame["qty"].dtype == np.int64
    # numeric(10, 2) would be Decimal objects from psycopg; the reader hands floats on, NULL as NaN.
    assert frame["price"].dtype == np.float64
    prices = frame.set_index("order_id")["price"]
    assert prices["edge-start"] == 19.99
    assert np.isnan(prices["edge-end"])


def test_query_source_with_percent_sign_and_trailing_comment(dsn_env):
    query = """select order_id, customer, ordered_at, qty * price as amount
               from shop.orders where country like 'United%' -- UK and US only"""
    source = read_postgres(SourceSpec(kind="postgres", query=query, dsn_env=dsn_env), "ordered_at")
    expected = [r for r in sorted(ORDERS, key=lambda r: r[2]) if r[5].startswith("United")]
    assert source.name == "postgresql:query"
    assert source.frame["order_id"].tolist() == [r[0] for r in expected]
    assert source.frame["amount"].tolist() == pytest.approx([r[3] * r[4] for r in expected])


def test_window_is_half_open_at_exact_boundaries(dsn_env):
    spec = SourceSpec(kind="postgres", table="shop.orders", dsn_env=dsn_env)
    ids = read_postgres(spec, "ordered_at", WINDOW_START, WINDOW_END).frame["order_id"].tolist()
    assert ids == _ids_between(WINDOW_START, WINDOW_END)
    assert ids[0] == "edge-start" and ids[-1] == "edge-before-end"
    assert "edge-end" not in ids
    assert 30 < len(ids) < 50  # about one day of orders every 37 minutes


def test_daily_windows_cover_every_row_once(dsn_env):
    spec = SourceSpec(kind="postgres", query="select * from shop.orders;\n", dsn_env=dsn_env)
    days = [DAY1 + timedelta(days=d) for d in range(9)]
    pieces = [read_postgres(spec, "ordered_at", start, end).frame for start, end in pairwise(days)]
    assert all(len(piece) for piece in pieces)
    assert pd.concat(pieces)["order_id"].tolist() == _ids_between(None, None)


def test_open_ended_windows(dsn_env):
    spec = SourceSpec(kind="postgres", table="shop.orders", dsn_env=dsn_env)
    assert read_postgres(spec, "ordered_at", start=WINDOW_END).frame["order_id"].tolist() == _ids_between(WINDOW_END, None)
    assert read_postgres(spec, "ordered_at", end=WINDOW_START).frame["order_id"].tolist() == _ids_between(None, WINDOW_START)


def _port(dsn: str) -> int:
    return psycopg.conninfo.conninfo_to_dict(dsn)["port"]


@pytest.mark.parametrize(
    ("make_dsn", "secret", "says"),
    [
        (lambda dsn: dsn.replace("clv:", "clv:Wr0ng-", 1), "Wr0ng-", "password authentication failed"),
        (lambda dsn: "postgresql://clv:Sw0rdfish@127.0.0.1:1/clv_test", "Sw0rdfish", "Connection refused"),
        # libpq's own parse error would quote "horse": the reader says only that the string is invalid.
        (
            lambda dsn: f"host=127.0.0.1 port={_port(dsn)} password=correct horse battery",
            "horse",
            f"{DSN_ENV} is not a valid connection string",
        ),
    ],
    ids=["wrong-password", "no-server", "malformed"],
)
def test_bad_dsn_is_one_line_without_the_password(shop_dsn, monkeypatch, make_dsn, secret, says):
    monkeypatch.setenv(DSN_ENV, make_dsn(shop_dsn))
    with pytest.raises(SourceError) as caught:
        read_postgres(SourceSpec(kind="postgres", table="shop.orders", dsn_env=DSN_ENV), "ordered_at")
    message = str(caught.value)
    assert caught.value.rule == "connection" and message.endswith("(rule: connection)")
    assert "postgresql" in message and says in message
    assert "\n" not in message
    assert secret not in message


def test_missing_table_names_source_and_relation(dsn_env, shop_dsn):
    with pytest.raises(SourceError) as caught:
        read_postgres(SourceSpec(kind="postgres", table="shop.refunds", dsn_env=dsn_env), "ordered_at")
    message = str(caught.value)
    assert message.startswith("postgresql:shop.refunds: ")
    assert 'relation "shop.refunds" does not exist' in message and "\n" not in message
    assert caught.value.rule == "source_table" and message.endswith("(rule: source_table)")
    assert psycopg.conninfo.conninfo_to_dict(shop_dsn)["password"] not in message


def test_missing_environment_variable(monkeypatch):
    monkeypatch.delenv(DSN_ENV, raising=False)
    with pytest.raises(SourceError, match=f"environment variable {DSN_ENV} is not set") as caught:
        read_postgres(SourceSpec(kind="postgres", table="shop.orders", dsn_env=DSN_ENV), "ordered_at")
    assert caught.value.rule == "connection"


def test_missing_timestamp_column_is_a_source_column_error(dsn_env):
    with pytest.raises(SourceError) as caught:
        read_postgres(SourceSpec(kind="postgres", table="shop.orders", dsn_env=dsn_env), "placed_at")
    message = str(caught.value)
    assert caught.value.rule == "source_column" and 'column "placed_at" does not exist' in message and "\n" not in message


# --- a source is read, never written --------------------------------------------------------------


@pytest.fixture
def victim(shop_dsn) -> Iterator[str]:
    """``shop.victim`` (3 rows), a sequence and a function that deletes from it, made afresh for each test."""
    with psycopg.connect(shop_dsn, autocommit=True) as con:
        con.execute("drop table if exists shop.victim; drop sequence if exists shop.ids; drop function if exists shop.purge()")
        con.execute(
            "create table shop.victim as select g as id, timestamp '2024-03-01' + g * interval '1 hour' as ordered_at "
            "from generate_series(1, 3) as g"
        )
        con.execute("create sequence shop.ids")
        con.execute(
            "create function shop.purge() returns timestamp language sql volatile as "
            "$$ delete from shop.victim; select timestamp '2024-03-01' $$"
        )
    yield shop_dsn
    with psycopg.connect(shop_dsn, autocommit=True) as con:
        assert con.execute("select count(*) from shop.victim").fetchone() == (3,)
        assert con.execute("select last_value, is_called from shop.ids").fetchone() == (1, False)


WRITES = {
    # The subquery closed, a second statement appended, a third opened so that the whole string parses.
    "appended_statement": "select * from shop.victim) as x; drop table shop.victim; select * from (select now() as ordered_at",
    "appended_then_comment": "select * from shop.victim) as x; drop table shop.victim; --",
    "data_modifying_cte": "select * from shop.victim) as x; with gone as (delete from shop.victim returning *) "
    "select * from gone; select * from (select now() as ordered_at",
    "sequence": "select nextval('shop.ids') as id, timestamp '2024-03-01' as ordered_at",
    "writing_function": "select shop.purge() as ordered_at",
    "select_into": "select * into shop.copy from shop.victim",
}


# The rule each one breaks: the server refuses a second statement or a write in the read-only transaction;
# a SELECT INTO or a comment that swallows the closing parenthesis no longer parses inside the subquery.
WRITE_RULES = {
    "appended_statement": "read_only_query",
    "appended_then_comment": "source_query",
    "data_modifying_cte": "read_only_query",
    "sequence": "read_only_query",
    "writing_function": "read_only_query",
    "select_into": "source_query",
}


@pytest.mark.parametrize(("query", "rule"), [(WRITES[k], WRITE_RULES[k]) for k in WRITES], ids=WRITES.keys())
def test_a_query_that_writes_leaves_the_database_as_it_was_and_is_one_line(victim, monkeypatch, query, rule):
    monkeypatch.setenv(DSN_ENV, victim)
    with pytest.raises(SourceError) as caught:
        read_postgres(SourceSpec(kind="postgres", query=query, dsn_env=DSN_ENV), "ordered_at")
    message = str(caught.value)
    assert message.startswith("postgresql:query: ") and "\n" not in message
    assert caught.value.rule == rule, message
    with psycopg.connect(victim) as con:
        assert con.execute("select to_regclass('shop.copy')").fetchone() == (None,)


def test_a_second_statement_is_refused_by_name(victim, monkeypatch):
    monkeypatch.setenv(DSN_ENV, victim)
    with pytest.raises(SourceError) as caught:
        read_postgres(SourceSpec(kind="postgres", query=WRITES["appended_statement"], dsn_env=DSN_ENV), "ordered_at")
    assert caught.value.rule == "read_only_query"
    assert "one statement that only reads" in str(caught.value) and "multiple commands" in str(caught.value)


@pytest.mark.parametrize("query", [WRITES["sequence"], WRITES["writing_function"]], ids=["sequence", "writing_function"])
def test_a_single_statement_that_writes_is_refused_by_the_read_only_transaction(victim, monkeypatch, query):
    monkeypatch.setenv(DSN_ENV, victim)
    with pytest.raises(SourceError) as caught:
        read_postgres(SourceSpec(kind="postgres", query=query, dsn_env=DSN_ENV), "ordered_at")
    assert caught.value.rule == "read_only_query" and "read-only transaction" in str(caught.value)
