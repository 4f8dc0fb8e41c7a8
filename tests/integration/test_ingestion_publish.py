"""Write-audit-publish: a new version of a day that fails a blocking check leaves the published one in place.

Real materializations on a real DuckDB file: a first version of the log is loaded, then a re-delivered
file breaks one blocking check at a time. Each time the run fails with one line saying the previous
version was kept, the failed check is reported, the published rows and quarantine are exactly as before,
and the rejected rows can be inspected in ``raw_staging``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster_aws.s3 import S3Resource
from dagster_duckdb import DuckDBResource

from clv_platform.defs.ingestion.assets import raw_customers, raw_daily
from clv_platform.lib.ingestion import RawSource, partition_range_tags

pytestmark = pytest.mark.integration

DAY, WEEK_BEFORE = datetime(2010, 12, 1), datetime(2010, 11, 24)  # the run's day and the window it is compared with
LINES_PER_DAY = 200
HEADER = "invoice_no,stock_code,description,quantity,invoice_date,unit_price,customer_id,country\n"
TRANSACTIONS, EVENTS, CUSTOMERS = (dg.AssetKey(["raw", n]) for n in ("transactions", "behavioral_events", "customers"))


def _day_lines(
    day: datetime, n: int = LINES_PER_DAY, price: float = 2.5, country: str = "United Kingdom", stamp: str = "%Y-%m-%d %H:%M:%S"
) -> str:
    """n order lines of ``day``, two per invoice, every 2 minutes from 8:00."""
    return "".join(
        f"{day:%y%m%d}{i // 2},sku{i % 7},item,{1 + i % 3},{(day + timedelta(hours=8, minutes=2 * i)).strftime(stamp)},"
        f"{price + i % 5},c{i % 40},{country}\n"
        for i in range(n)
    )


def _write(folder: Path, transactions: str, events: str | None = None, customers: str | None = None) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "orders.csv").write_text(HEADER + transactions)
    spec = "transactions: {kind: files, path: orders.csv, preset: canonical}\n"
    if events is not None:
        (folder / "events.csv").write_text("event_id,session_id,customer_id,event_type,event_timestamp\n" + events)
        spec += "behavioral_events: {kind: files, path: events.csv}\n"
    if customers is not None:
        (folder / "customers.csv").write_text("customer_id,country,acquisition_channel,signup_date\n" + customers)
        spec += "customers: {kind: files, path: customers.csv}\n"
    (folder / "source.yaml").write_text(spec)
    return folder / "source.yaml"


def _run(spec: Path, database: Path, first: datetime, last: datetime, keys: list[dg.AssetKey]) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [raw_daily, raw_customers],
        selection=keys,
        resources={
            "raw_source": RawSource(spec_path=str(spec)),
            "warehouse": DuckDBResource(database=str(database)),
            "s3": S3Resource(region_name="us-east-1"),
        },
        tags=partition_range_tags(first.date(), last.date()),
        raise_on_error=False,
    )


def _published(database: Path) -> dict:
    """Every published raw table, row for row (checksums over all columns, provenance included)."""
    with duckdb.connect(str(database), read_only=True) as con:
        tables = [
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = 'raw' order by 1"
            ).fetchall()
        ]
        return {t: con.execute(f"select count(*), sum(hash(t)) from raw.{t} t").fetchone() for t in tables}


def _query(database: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(database), read_only=True) as con:
        return con.execute(sql).fetchall()


def _refused(result: dg.ExecuteInProcessResult, check: str) -> str:
    """The run failed on ``check`` alone among the checks and with one line; that line."""
    assert not result.success
    failed = sorted(e.check_name for e in result.get_asset_check_evaluations() if not e.passed)
    assert failed == [check]
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = failure.event_specific_data.user_failure_data.description
    assert "\n" not in message
    assert "the new version was not published, the previous one is kept" in message and f"(rule: {check})" in message
    return message


def test_redelivered_day_whose_dates_do_not_parse_keeps_the_good_rows(tmp_path):
    """A re-delivered file for 2010-12-01 whose dates did not parse must not replace its 200 good rows with nothing."""
    database = tmp_path / "warehouse.duckdb"
    good = _write(tmp_path / "v1", _day_lines(DAY) + "bad,sku,item,1,2010-12-01 09:00:00,2.0,,United Kingdom\n")
    assert _run(good, database, DAY, DAY, [TRANSACTIONS]).success
    before = _published(database)
    assert before["transactions"][0] == LINES_PER_DAY and before["transactions_quarantine"][0] == 1

    unparsed = _write(tmp_path / "v2", _day_lines(DAY, stamp="%d.%m.%Y %H:%M"))
    # raw/customers depends on raw/transactions: it must not run on a refused day.
    result = _run(unparsed, database, DAY, DAY, [TRANSACTIONS, CUSTOMERS])
    assert _published(database) == before
    message = _refused(result, "quarantine_share_within_limit")
    assert message.startswith("raw.transactions 2010-12-01: ") and "100.0% of the rows were quarantined" in message
    assert "raw_staging.transactions_quarantine" in message
    assert not [e for e in result.get_asset_materialization_events() if e.asset_key in (TRANSACTIONS, CUSTOMERS)]
    assert "raw__customers" not in {e.step_key for e in result.all_events if e.is_step_success or e.is_step_failure}
    # The rejected version is there to look at: every line, quarantined for its date.
    assert _query(database, "select count(*), min(rule), max(rule) from raw_staging.transactions_quarantine") == [
        (LINES_PER_DAY, "timestamp_parseable", "timestamp_parseable")
    ]

    # A good re-delivery publishes, and leaves no staged rows behind.
    fixed = _write(tmp_path / "v3", _day_lines(DAY, price=3.0))
    assert _run(fixed, database, DAY, DAY, [TRANSACTIONS]).success
    assert _query(database, "select count(*), min(unit_price) from raw.transactions") == [(LINES_PER_DAY, 3.0)]
    assert _query(database, "select count(*) from raw.transactions_quarantine") == [(0,)]
    assert _query(database, "select count(*) from information_schema.tables where table_schema = 'raw_staging'") == [(0,)]


# Each blocking table rule of raw/transactions, broken by the re-delivered day (the week before is unchanged).
BROKEN_DAY = {
    "volume_change_within_limit": _day_lines(DAY, n=10),  # 10 lines against 200 the week before: 20x fewer
    "mean_order_value_stable": _day_lines(DAY, price=40.0),  # about 10x the order value
    "countries_stable": _day_lines(DAY, country="Atlantis"),  # every line from a country never seen before
}


@pytest.mark.parametrize("check", sorted(BROKEN_DAY))
def test_each_transaction_table_rule_keeps_the_published_day(tmp_path, check):
    database = tmp_path / "warehouse.duckdb"
    first = _write(tmp_path / "v1", _day_lines(WEEK_BEFORE) + _day_lines(DAY))
    assert _run(first, database, WEEK_BEFORE, DAY, [TRANSACTIONS]).success
    before = _published(database)
    assert before["transactions"][0] == 2 * LINES_PER_DAY

    redelivered = _write(tmp_path / "v2", _day_lines(WEEK_BEFORE) + BROKEN_DAY[check])
    result = _run(redelivered, database, DAY, DAY, [TRANSACTIONS])
    assert _published(database) == before
    assert _refused(result, check).startswith("raw.transactions 2010-12-01: ")


def _events(day: datetime, event_type: str, n: int = 50) -> str:
    return "".join(
        f"e{day:%m%d}{i},s{i // 5},c{i % 40},{event_type},{day + timedelta(hours=9, minutes=i):%Y-%m-%d %H:%M:%S}\n"
        for i in range(n)
    )


def test_events_quarantine_share_keeps_the_published_events(tmp_path):
    database = tmp_path / "warehouse.duckdb"
    first = _write(tmp_path / "v1", _day_lines(DAY), events=_events(DAY, "page_view"))
    assert _run(first, database, DAY, DAY, [TRANSACTIONS, EVENTS]).success
    before = _published(database)
    assert before["behavioral_events"][0] == 50

    # Every event of an unknown type: all quarantined. The transactions pass and are published.
    redelivered = _write(tmp_path / "v2", _day_lines(DAY, price=3.0), events=_events(DAY, "teleport"))
    result = _run(redelivered, database, DAY, DAY, [TRANSACTIONS, EVENTS])
    after = _published(database)
    assert {t: after[t] for t in ("behavioral_events", "behavioral_events_quarantine")} == {
        t: before[t] for t in ("behavioral_events", "behavioral_events_quarantine")
    }
    assert _refused(result, "events_quarantine_share_within_limit").startswith("raw.behavioral_events 2010-12-01: ")
    assert _query(database, "select min(unit_price) from raw.transactions") == [(3.0,)]


def test_new_acquisition_channels_keep_the_published_customers(tmp_path):
    database = tmp_path / "warehouse.duckdb"
    customers = "".join(f"c{i},United Kingdom,{'web' if i % 2 else 'store'},2010-06-01\n" for i in range(40))
    first = _write(tmp_path / "v1", _day_lines(DAY), customers=customers)
    assert _run(first, database, DAY, DAY, [TRANSACTIONS, CUSTOMERS]).success
    before = _published(database)
    assert before["customers"][0] == 40

    renamed = customers.replace(",web,", ",tiktok,").replace(",store,", ",tiktok,")
    redelivered = _write(tmp_path / "v2", _day_lines(DAY), customers=renamed)
    result = _run(redelivered, database, DAY, DAY, [CUSTOMERS])
    assert _published(database) == before
    message = _refused(result, "acquisition_channels_stable")
    assert message.startswith("raw.customers: ") and "tiktok" in message
    assert _query(database, "select count(*), min(acquisition_channel) from raw_staging.customers") == [(40, "tiktok")]


def test_a_source_read_in_chunks_stages_the_same_tables(tmp_path, monkeypatch):
    """raw_daily stages chunk by chunk: the tables and counts are those of one pass, duplicates across chunks included."""
    from clv_platform.ingest import readers

    lines = _day_lines(WEEK_BEFORE, n=30) + _day_lines(DAY, n=30)
    repeated = lines.splitlines(keepends=True)[3]  # a line of the first chunk, again in later ones
    lines += repeated + "x,sku,no customer,1,2010-12-01 09:00:00,2.0,,United Kingdom\n" + "short,line\n" + repeated
    spec = _write(tmp_path / "source", lines)

    def load(database: Path, chunk_rows: int) -> tuple[dict, dict]:
        monkeypatch.setattr(readers, "CHUNK_ROWS", chunk_rows)
        result = _run(spec, database, WEEK_BEFORE, DAY, [TRANSACTIONS])
        assert result.success
        # One materialization per day of the range, each with the run's metadata.
        event = next(e for e in result.get_asset_materialization_events() if e.asset_key == TRANSACTIONS)
        meta = {k: v.value for k, v in event.materialization.metadata.items()}
        [schema] = [e for e in result.get_asset_check_evaluations() if e.check_name == "schema_matches_contract"]
        with duckdb.connect(str(database), read_only=True) as con:
            tables = {
                t: con.execute(f"select * exclude ({stamp}) from raw.{t} order by all").fetchall()
                for t, stamp in (("transactions", "_loaded_at"), ("transactions_quarantine", "loaded_at"))
            }
        counts = ("rows_read_from_source", "rows_accepted", "rows_quarantined", "quarantined_by_rule")
        return tables, {**{k: meta[k] for k in counts}, "chunks": schema.metadata["chunks"].value}

    whole, whole_counts = load(tmp_path / "whole.duckdb", 1_000_000)
    chunked, chunked_counts = load(tmp_path / "chunked.duckdb", 7)
    assert whole_counts.pop("chunks") == 1 and chunked_counts.pop("chunks") == 10
    assert chunked == whole and chunked_counts == whole_counts
    # Every line of the file is stored or quarantined: counted in the tables, not taken from the metadata.
    assert whole_counts["rows_read_from_source"] == len(lines.splitlines()) == 64
    assert len(whole["transactions"]) + len(whole["transactions_quarantine"]) == 64
    rules = sorted(row[3] for row in whole["transactions_quarantine"])
    assert rules == ["customer_id_present", "duplicate_line", "duplicate_line", "field_count"]


def test_a_file_that_breaks_off_after_some_chunks_keeps_the_published_day(tmp_path, monkeypatch):
    import gzip

    from clv_platform.ingest import readers

    monkeypatch.setattr(readers, "CHUNK_ROWS", 20)
    database = tmp_path / "warehouse.duckdb"
    assert _run(_write(tmp_path / "v1", _day_lines(DAY)), database, DAY, DAY, [TRANSACTIONS]).success
    before = _published(database)

    folder = tmp_path / "v2"
    folder.mkdir()
    (folder / "orders.csv.gz").write_bytes(gzip.compress((HEADER + _day_lines(DAY, price=3.0)).encode())[:-200])
    (folder / "source.yaml").write_text("transactions: {kind: files, path: orders.csv.gz, preset: canonical}\n")
    result = _run(folder / "source.yaml", database, DAY, DAY, [TRANSACTIONS])
    assert not result.success and _published(database) == before
    failure = next(e for e in result.all_events if e.is_step_failure).event_specific_data.user_failure_data.description
    assert failure.startswith(f"{folder / 'orders.csv.gz'}: corrupt or truncated gzip stream") and "\n" not in failure
    assert "schema_matches_contract" in {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}
    assert _query(database, "select count(*) from information_schema.tables where table_schema = 'raw_staging'") == [(0,)]


def test_customers_materialized_first_on_a_fresh_warehouse_are_published(tmp_path):
    # The generator's customers need no raw table: on a new warehouse, raw/customers may be the first asset to run.
    spec = tmp_path / "source.yaml"
    spec.write_text("generator: {n_customers: 30, years: 1}\n")
    database = tmp_path / "warehouse.duckdb"
    result = dg.materialize(
        [raw_daily, raw_customers],
        selection=[CUSTOMERS],
        resources={
            "raw_source": RawSource(spec_path=str(spec)),
            "warehouse": DuckDBResource(database=str(database)),
            "s3": S3Resource(region_name="us-east-1"),
        },
        raise_on_error=False,
    )
    assert result.success
    assert _published(database)["customers"][0] == 30
    assert _query(database, "select count(*) from information_schema.tables where table_schema = 'raw_staging'") == [(0,)]
