"""The analyst export's pure part: Parquet bytes, manifest, key layout, URI parsing, error messages."""

from __future__ import annotations

import doctest
import hashlib
import io
import json
from datetime import UTC, date, datetime

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from clv_platform import export
from clv_platform.export import build_export, parse_export_uri

EXPORTED_AT = datetime(2011, 12, 6, 4, 30, tzinfo=UTC)


def scores(cutoff: str = "2011-12-05", version: str = "7", customers=("c3", "c1", "c2")) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": list(customers),
            "cutoff_date": pd.to_datetime([cutoff] * len(customers)),
            "predicted_clv": [30.5, 10.25, 0.0][: len(customers)] + [1.0] * max(0, len(customers) - 3),
            "value_tier": ["High", "Medium", "Low"][: len(customers)] + ["Low"] * max(0, len(customers) - 3),
            "model_name": "clv_xgboost",
            "model_version": version,
        }
    )


def test_parquet_round_trips_without_the_partition_column_sorted_by_customer():
    files = build_export(scores(), EXPORTED_AT)
    back = pq.read_table(io.BytesIO(files.parquet)).to_pandas()
    assert list(back.columns) == ["customer_id", "predicted_clv", "value_tier", "model_name", "model_version"]
    assert back["customer_id"].tolist() == ["c1", "c2", "c3"]
    assert back["predicted_clv"].tolist() == [10.25, 0.0, 30.5]
    assert back["value_tier"].tolist() == ["Medium", "Low", "High"]
    assert set(back["model_version"]) == {"7"} and set(back["model_name"]) == {"clv_xgboost"}


def test_manifest_describes_the_bytes():
    files = build_export(scores(), EXPORTED_AT)
    assert files.manifest == {
        "dataset": "clv_scores",
        "cutoff_date": "2011-12-05",
        "file": "clv_scores.parquet",
        "row_count": 3,
        "columns": ["customer_id", "predicted_clv", "value_tier", "model_name", "model_version"],
        "model_name": "clv_xgboost",
        "model_version": "7",
        "bytes": len(files.parquet),
        "sha256": hashlib.sha256(files.parquet).hexdigest(),
        "exported_at": "2011-12-06T04:30:00+00:00",
        "neutralized_cells": {},
    }
    assert json.loads(files.manifest_bytes) == files.manifest


def test_key_layout_is_hive_style_per_cutoff():
    files = build_export(scores(cutoff="2011-12-05"), EXPORTED_AT)
    assert files.parquet_key == "clv_scores/cutoff_date=2011-12-05/clv_scores.parquet"
    assert files.manifest_key == "clv_scores/cutoff_date=2011-12-05/_manifest.json"
    location = parse_export_uri("s3://analytics/marketing/clv/")
    assert location.object_key(files.parquet_key) == "marketing/clv/clv_scores/cutoff_date=2011-12-05/clv_scores.parquet"
    assert location.join(files.manifest_key) == "s3://analytics/marketing/clv/clv_scores/cutoff_date=2011-12-05/_manifest.json"
    assert parse_export_uri("s3://analytics").object_key(files.parquet_key) == files.parquet_key


def test_same_scores_give_the_same_bytes_whatever_the_row_order():
    first = build_export(scores(), EXPORTED_AT)
    shuffled = build_export(scores().iloc[[2, 0, 1]], datetime.now(UTC))
    assert shuffled.parquet == first.parquet
    assert shuffled.manifest["sha256"] == first.manifest["sha256"]
    assert build_export(scores(version="8"), EXPORTED_AT).manifest["sha256"] != first.manifest["sha256"]


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (pd.concat([scores(cutoff="2011-11-28"), scores(cutoff="2011-12-05")]), "'cutoff_date' holds 2 values"),
        (scores().assign(model_version=None), "'model_version' has missing values"),
        (scores().drop(columns=["model_version"]), "lack column.*model_version"),
        (scores().iloc[0:0], "no rows"),
        (pd.concat([scores(), scores()]), "'customer_id' must be present and unique"),
    ],
)
def test_rejects_frames_an_export_cannot_describe(frame, match):
    with pytest.raises(ValueError, match=match):
        build_export(frame, EXPORTED_AT)


def test_a_cutoff_scored_by_two_arms_exports_each_rows_version():
    two = pd.concat([scores(version="10", customers=("a",)), scores(version="7", customers=("b",))])
    exported = build_export(two, EXPORTED_AT)
    assert exported.manifest["model_version"] == "7,10"
    back = pq.read_table(io.BytesIO(exported.parquet)).to_pandas()
    assert back.set_index("customer_id")["model_version"].to_dict() == {"a": "10", "b": "7"}


def test_rejects_naive_export_time():
    with pytest.raises(ValueError, match="timezone-aware"):
        build_export(scores(), datetime(2011, 12, 6))


def test_parse_export_uri(tmp_path):
    s3 = parse_export_uri(" s3://bucket/a/b/ ")
    assert (s3.scheme, s3.bucket, s3.prefix) == ("s3", "bucket", "a/b")
    assert parse_export_uri(str(tmp_path)).folder == tmp_path.resolve()
    assert parse_export_uri(f"file://{tmp_path}").folder == tmp_path.resolve()
    for bad, match in [
        ("s3://", "names a bucket"),
        ("gs://bucket/x", "unsupported scheme 'gs'"),
        ("file://host/x", "local folder"),
        ("  ", "empty"),
    ]:
        with pytest.raises(ValueError, match=match):
            parse_export_uri(bad)


def test_folder_export_reads_back_as_a_partitioned_dataset_and_overwrites_in_place(tmp_path):
    location = parse_export_uri(str(tmp_path / "exports"))
    export.write_to_folder(location, build_export(scores(cutoff="2011-11-28", version="6"), EXPORTED_AT))
    export.write_to_folder(location, build_export(scores(cutoff="2011-12-05", customers=("x", "y")), EXPORTED_AT))
    rescored = build_export(scores(cutoff="2011-12-05", version="8", customers=("x", "y", "z")), EXPORTED_AT)
    export.write_to_folder(location, rescored)

    partition = tmp_path / "exports" / "clv_scores" / "cutoff_date=2011-12-05"
    assert sorted(p.name for p in partition.iterdir()) == ["_manifest.json", "clv_scores.parquet"]
    assert json.loads((partition / "_manifest.json").read_text()) == rescored.manifest
    rows = duckdb.sql(
        f"select cutoff_date, model_version, count(*) as n from read_parquet('{tmp_path}/exports/clv_scores/*/*.parquet', "
        "hive_partitioning = true) group by all order by cutoff_date"
    ).fetchall()
    assert rows == [(date(2011, 11, 28), "6", 3), (date(2011, 12, 5), "8", 3)]


def client_error(code: str, message: str = "nope") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "PutObject")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (client_error("NoSuchBucket"), "bucket 'missing' does not exist"),
        (
            client_error("InvalidAccessKeyId", "The key\nis unknown"),
            "refused the credentials (InvalidAccessKeyId: The key is unknown)",
        ),
        (client_error("AccessDenied"), "access denied"),
        (NoCredentialsError(), "no AWS credentials found"),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), "http://127.0.0.1:9"),
    ],
)
def test_write_errors_become_one_line_naming_the_uri(error, expected):
    message = export.describe_write_error(error, parse_export_uri("s3://missing/clv"))
    assert message.startswith("Cannot export to s3://missing/clv: ")
    assert expected in message and "\n" not in message


def test_unknown_errors_are_not_described():
    assert export.describe_write_error(RuntimeError("bug"), parse_export_uri("s3://b/p")) is None


def test_docstring_examples():
    assert doctest.testmod(export).failed == 0


# What an attacker can put in a source's text fields, and what the spreadsheet would run.
FORMULAS = ["=cmd|' /C calc'!A0", "+SUM(1,2)", "@SUM(A1)", "-2+3", "\t=1+1", "\r=1+1", '=HYPERLINK("http://x")']


def test_every_text_cell_a_spreadsheet_would_run_is_made_inert_whatever_the_column_or_dtype():
    n = len(FORMULAS)
    frame = pd.DataFrame(
        {
            "customer_id": FORMULAS + ["c1", "-12", "+3.5e2"],  # object; text that is only a number stays
            "description": pd.array(["WHITE MUG", "- 50% off", *FORMULAS, None], dtype="string"),
            "country": pd.Categorical(["@SUM(A1)", *["France"] * (n + 1), "=1"]),
            "mixed": [-5, None, 2.5, "=1+1", *["ok"] * (n - 1)],  # object holding numbers too
            "net_amount": [-2.5, -0.0, 3.0, *[1.0] * n],
            "orders": [-1, 0, 2, *[1] * n],
        }
    )
    before = frame.copy()
    safe, counts = export.neutralize_formulas(frame)

    assert safe["customer_id"].tolist() == ["'" + f for f in FORMULAS] + ["c1", "-12", "+3.5e2"]
    assert safe["description"].tolist()[:2] == ["WHITE MUG", "'- 50% off"]
    assert safe["description"].tolist()[2:-1] == ["'" + f for f in FORMULAS]
    assert pd.isna(safe["description"].iloc[-1])
    assert safe["country"].tolist() == ["'@SUM(A1)", *["France"] * (n + 1), "'=1"]
    assert safe["mixed"].tolist()[:4] == [-5, None, 2.5, "'=1+1"]
    # Numbers stay numbers: same values, same dtypes.
    assert safe["net_amount"].tolist() == frame["net_amount"].tolist() and safe["net_amount"].dtype == "float64"
    assert safe["orders"].tolist() == frame["orders"].tolist() and safe["orders"].dtype == "int64"
    assert counts == {"customer_id": n, "description": n + 1, "country": 2, "mixed": 1}
    pd.testing.assert_frame_equal(frame, before)  # the input is not changed
    assert export.neutralize_formulas(frame.iloc[1:2][["net_amount"]])[1] == {}


def test_an_export_of_customers_named_as_formulas_holds_inert_text_and_counts_it():
    rows = scores(customers=("c1", "=cmd|' /C calc'!A0", "+SUM(1,2)", "@SUM(A1)", "-2+3"))
    rows["predicted_clv"] = [-1.5, 2.0, 3.0, 4.0, 5.0]  # a negative prediction is a number, not a formula
    files = build_export(rows, EXPORTED_AT)
    back = pq.read_table(io.BytesIO(files.parquet)).to_pandas()
    by_id = dict(zip(back["customer_id"], back["predicted_clv"], strict=True))
    assert by_id == {"'+SUM(1,2)": 3.0, "'-2+3": 5.0, "'=cmd|' /C calc'!A0": 2.0, "'@SUM(A1)": 4.0, "c1": -1.5}
    assert str(back["predicted_clv"].dtype) == "float64"
    assert files.manifest["neutralized_cells"] == {"customer_id": 4}

    # Made inert, "=x" would repeat a customer already named "'=x": refused rather than exported twice.
    with pytest.raises(ValueError, match="repeats '=x once formulas are made inert"):
        build_export(scores(customers=("=x", "'=x", "c3")), EXPORTED_AT)
