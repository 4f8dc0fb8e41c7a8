"""One raw table's window load without Dagster, on a real DuckDB: published, refused by a table rule, or unreadable."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import pytest

from clv_platform.ingest.spec import IngestionSpec, RuleLimits, SourceSpec
from clv_platform.ingest.validate import TRANSACTIONS
from clv_platform.lib.raw_load import load_window

DAY = datetime(2010, 12, 1)
HEADER = "invoice_no,stock_code,description,quantity,invoice_date,unit_price,customer_id,country\n"


def _lines(day: datetime, n: int, price: float = 2.5) -> str:
    return "".join(
        f"{day:%y%m%d}{i // 2},sku{i % 7},item,{1 + i % 3},{day + timedelta(hours=8, minutes=2 * i):%Y-%m-%d %H:%M:%S},"
        f"{price},c{i % 40},United Kingdom\n"
        for i in range(n)
    )


def _load(con, tmp_path, text: str, **limits):
    (tmp_path / "orders.csv").write_text(text)
    source = SourceSpec(kind="files", path=str(tmp_path / "orders.csv"), preset="canonical")
    spec = IngestionSpec(transactions=source, limits=RuleLimits(**limits))
    return load_window(
        con,
        TRANSACTIONS,
        source,
        spec,
        builtin_table=None,
        s3_client=lambda: pytest.fail("no S3 source here"),
        pii_key=None,
        loaded_at=datetime(2011, 1, 1),
        start=DAY,
        end=DAY + timedelta(days=1),
    )


def _published(con) -> tuple[int, int]:
    return con.execute("select count(*), count(*) filter (unit_price = 2.5) from raw.transactions").fetchone()


def test_a_day_is_published_then_a_refused_version_leaves_it(tmp_path):
    con = duckdb.connect()
    # The day before the window is read and counted, never written: rows read = in the window + outside it.
    first = _load(con, tmp_path, HEADER + _lines(DAY - timedelta(days=1), 10) + _lines(DAY, 100) + "bad,line\n")
    assert first.published and first.unreadable is None and first.failed == {}
    assert (first.staged.rows_read, first.staged.outside, first.staged.accepted, first.staged.quarantined) == (111, 10, 100, 1)
    assert _published(con) == (100, 100)
    assert con.execute("select rule from raw.transactions_quarantine").fetchall() == [("field_count",)]
    # A re-delivery with more bad lines than the limit allows: the table rule refuses it, the published day stays.
    second = _load(con, tmp_path, HEADER + _lines(DAY, 20, price=3.0) + "bad,line\n" * 5, max_quarantine_share=0.1)
    assert not second.published and list(second.failed) == ["quarantine_share_within_limit"]
    assert _published(con) == (100, 100)
    assert con.execute("select count(*) from raw.transactions_quarantine").fetchone() == (1,)
    # The refused version waits in raw_staging for inspection.
    assert [con.execute(f"select count(*) from {t}").fetchone()[0] for t in second.staged_tables] == [20, 5]


def test_an_unreadable_source_stages_nothing_and_says_where(tmp_path):
    con = duckdb.connect()
    load = _load(con, tmp_path, "customer,day\n1,2010-12-01\n")
    assert not load.published and load.verdicts == {} and load.staged is None
    assert str(tmp_path / "orders.csv") in str(load.unreadable)
    assert con.execute("select count(*) from information_schema.tables where table_schema = 'raw_staging'").fetchone() == (0,)


def test_a_source_without_rows_is_judged_by_nothing(tmp_path):
    con = duckdb.connect()
    load = _load(con, tmp_path, HEADER)
    assert load.staged.rows_read == 0 and load.verdicts == {} and not load.published
