"""raw/transactions from objects under an S3 prefix, through dagster-aws, against a real moto_server.

CSV, gzip CSV and Parquet objects of the UCI Online Retail shape sit under ``landing/`` beside a
README.txt; another object sits outside the prefix. The asset is materialized for the source's
full date range with the production S3 binding (``s3_from_environment``) pointed at the server.
"""

from __future__ import annotations

import gzip
import io
import uuid
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from clv_platform.defs.resources import s3_from_environment
from clv_platform.ingest.spec import load_spec
from clv_platform.lib.ingestion import source_date_range

pytestmark = pytest.mark.integration

TRANSACTIONS = dg.AssetKey(["raw", "transactions"])
HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
DAY_ONE = HEADER + (
    "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2011-12-01 08:26:00,2.55,17850,United Kingdom\n"
    "536365,71053,WHITE METAL LANTERN,6,2011-12-01 08:26:00,3.39,17850,United Kingdom\n"
    "536366,22633,HAND WARMER UNION JACK,six,2011-12-01 08:28:00,1.85,17850,United Kingdom\n"  # row 4: bad quantity
    "536367,84879,ASSORTED COLOUR BIRD ORNAMENT,32,2011-12-01 08:34:00,1.69,13047,United Kingdom\n"
)
DAY_TWO = HEADER + (
    "536400,22960,JAM MAKING SET WITH JARS,4,2011-12-02 09:00:00,4.25,12583,France\n"
    "536401,22913,RED COAT RACK PARIS FASHION,3,2011-12-02 10:15:00,4.95,12583,France\n"
)
DAY_THREE = pd.DataFrame(
    {
        "InvoiceNo": ["536500", "536500", "536501"],
        "StockCode": ["21754", "21755", "22748"],
        "Description": ["HOME BUILDING BLOCK WORD", "LOVE BUILDING BLOCK WORD", "POPPY'S PLAYHOUSE KITCHEN"],
        "Quantity": [3, 3, 6],
        "InvoiceDate": pd.to_datetime(["2011-12-03 11:00", "2011-12-03 11:00", "2011-12-03 12:30"]),
        "UnitPrice": [5.95, 5.95, 2.10],
        "CustomerID": [13748.0, 13748.0, 15100.0],  # floats, as pandas stores a column with missing ids
        "Country": ["United Kingdom", "United Kingdom", "United Kingdom"],
    }
)
OUTSIDE = HEADER + "536600,22111,SCOTTIE DOG HOT WATER BOTTLE,1,2011-12-04 09:00:00,4.95,17850,United Kingdom\n"


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


@pytest.fixture
def landing_bucket(s3_client) -> str:
    name = f"clv-landing-{uuid.uuid4().hex[:8]}"
    s3_client.create_bucket(Bucket=name)
    objects = {
        "landing/2011-12-01.csv": DAY_ONE.encode(),
        "landing/2011-12-02.csv.gz": gzip.compress(DAY_TWO.encode()),
        "landing/parquet/2011-12-03.parquet": _parquet(DAY_THREE),
        "landing/README.txt": b"Daily exports of the shop; one file per day.\n",
        "archive/2011-12-04.csv": OUTSIDE.encode(),
    }
    for key, body in objects.items():
        s3_client.put_object(Bucket=name, Key=key, Body=body)
    return name


def _spec(tmp_path: Path, bucket: str) -> Path:
    spec = tmp_path / "source.yaml"
    spec.write_text(f"transactions: {{kind: s3, bucket: {bucket}, prefix: landing/, preset: online_retail}}\n")
    return spec


@pytest.fixture
def load(materialize_raw):
    """``load(spec, database, first, last)`` with the production S3 binding; a failed run is returned, not raised."""

    def load(spec: Path, database: Path, first, last) -> dg.ExecuteInProcessResult:
        # AWS_ENDPOINT_URL and the keys (aws_env, through s3_client) point at the moto server.
        return materialize_raw(spec, database, first, last, s3=s3_from_environment(), raise_on_error=False)

    return load


def _query(database: Path, sql: str):
    with duckdb.connect(str(database), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_objects_under_the_prefix_load_with_their_s3_uris(clv_state, tmp_path, landing_bucket, s3_client, load):
    spec = _spec(tmp_path, landing_bucket)
    uri = f"s3://{landing_bucket}/landing"
    # The full range is that of the objects under the prefix: the one in archive/ (2011-12-04) is not read.
    first, last = source_date_range(load_spec(spec), s3_client=s3_client)
    assert (str(first), str(last)) == ("2011-12-01", "2011-12-03")

    database = tmp_path / "warehouse.duckdb"
    result = load(spec, database, first, last)
    assert result.success
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == TRANSACTIONS]
    assert len(events) == 3  # one per day of the range, with the run's metadata
    meta = {k: v.value for k, v in events[0].materialization.metadata.items()}
    # README.txt is not data; every record of the three data objects is accounted for.
    assert meta["rows_by_source"] == {
        f"{uri}/2011-12-01.csv": 4,
        f"{uri}/2011-12-02.csv.gz": 2,
        f"{uri}/parquet/2011-12-03.parquet": 3,
    }
    assert (meta["rows_read"], meta["rows_accepted"], meta["rows_quarantined"]) == (9, 8, 1)

    assert _query(database, "select _source, count(*) from raw.transactions group by _source order by _source") == [
        (f"{uri}/2011-12-01.csv", 3),
        (f"{uri}/2011-12-02.csv.gz", 2),
        (f"{uri}/parquet/2011-12-03.parquet", 3),
    ]
    # Row numbers are the object's own: CSV counts the header as row 1, Parquet has none.
    assert _query(
        database, "select _source_row, customer_id from raw.transactions where _source like '%.parquet' order by _source_row"
    ) == [(1, "13748"), (2, "13748"), (3, "15100")]
    assert _query(database, "select count(*) from raw.transactions where invoice_date >= '2011-12-04'") == [(0,)]
    assert _query(database, "select source, source_row, rule, column_name, value from raw.transactions_quarantine") == [
        (f"{uri}/2011-12-01.csv", 4, "quantity_integer", "Quantity", "six")
    ]
    assert all(e.passed for e in result.get_asset_check_evaluations())


def test_an_unreadable_object_fails_the_run_with_one_line_naming_its_uri(clv_state, tmp_path, landing_bucket, s3_client, load):
    s3_client.put_object(Bucket=landing_bucket, Key="landing/2011-12-05.csv.gz", Body=gzip.compress(DAY_TWO.encode())[:40])
    database = tmp_path / "warehouse.duckdb"
    result = load(_spec(tmp_path, landing_bucket), database, "2011-12-01", "2011-12-03")
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure).event_specific_data.error
    message = failure.message.strip().splitlines()[-1]
    assert f"s3://{landing_bucket}/landing/2011-12-05.csv.gz: corrupt or truncated gzip stream" in message
    assert message.endswith("(rule: readable_file)")
    assert not database.exists() or _query(
        database, "select count(*) from information_schema.tables where table_name = 'transactions'"
    ) == [(0,)]
