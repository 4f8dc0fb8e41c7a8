"""scoring/clv_scores_export against a real S3-compatible server (moto_server on loopback) and a local folder.

The warehouse is a hand-made ``scoring.clv_scores`` with two cutoffs and their ``scoring.value_tiers``; only the export asset is
materialized, with its resources bound here. The server and its client are fixtures of ``conftest.py``.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest
from dagster_duckdb import DuckDBResource

pytestmark = pytest.mark.integration

EARLIER, LATEST = date(2011, 11, 28), date(2011, 12, 5)
SCORES = [
    ("c1", EARLIER, 12.0, "High", "clv_xgboost", "3"),
    ("c2", EARLIER, 5.0, "Low", "clv_xgboost", "3"),
    ("c9", EARLIER, 7.0, "Medium", "clv_xgboost", "3"),
    ("c3", LATEST, 0.5, "Low", "clv_xgboost", "4"),
    ("c1", LATEST, 14.5, "High", "clv_xgboost", "4"),
    ("c2", LATEST, 4.0, "Medium", "clv_xgboost", "4"),
]
PARTITION = "clv_scores/cutoff_date=2011-12-05"


@pytest.fixture
def bucket(s3_client, monkeypatch) -> str:
    name = f"clv-exports-{uuid.uuid4().hex[:8]}"
    s3_client.create_bucket(Bucket=name)
    monkeypatch.setenv("CLV_EXPORT_URI", f"s3://{name}/marketing/clv")
    return name


def write_scores(con, rows) -> None:
    """Insert scores (``SCORES``' shape) into scoring.clv_scores, and their tiers into scoring.value_tiers."""
    con.executemany("insert into scoring.clv_scores values (?, ?, ?, ?, ?)", [(c, d, p, n, v) for c, d, p, _, n, v in rows])
    con.executemany("insert into scoring.value_tiers values (?, ?, ?, ?, ?, ?)", rows)


@pytest.fixture
def warehouse(tmp_path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create schema scoring")
        con.execute(
            "create table scoring.clv_scores (customer_id varchar, cutoff_date date, predicted_clv double, "
            "model_name varchar, model_version varchar)"
        )
        con.execute(
            "create table scoring.value_tiers (customer_id varchar, cutoff_date date, predicted_clv double, "
            "value_tier varchar, model_name varchar, model_version varchar)"
        )
        write_scores(con, SCORES)
    return path


def materialize_export(warehouse: Path) -> dg.ExecuteInProcessResult:
    from clv_platform.defs.resources import s3_from_environment
    from clv_platform.defs.scoring.export import clv_scores_export

    return dg.materialize(
        [clv_scores_export],
        resources={"warehouse": DuckDBResource(database=str(warehouse)), "s3": s3_from_environment()},
        instance=dg.DagsterInstance.ephemeral(),
    )


def export_metadata(result: dg.ExecuteInProcessResult) -> dict:
    (event,) = result.get_asset_materialization_events()
    return {key: value.value for key, value in event.materialization.metadata.items()}


def objects(s3_client, bucket: str) -> dict[str, bytes]:
    listing = s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {item["Key"]: s3_client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read() for item in listing}


def rows(parquet: bytes) -> list[tuple]:
    table = pq.read_table(io.BytesIO(parquet))
    return sorted(zip(*(table.column(name).to_pylist() for name in table.column_names), strict=True))


def test_exports_only_the_latest_cutoff_to_s3_with_a_matching_manifest(warehouse, bucket, s3_client):
    result = materialize_export(warehouse)

    stored = objects(s3_client, bucket)
    parquet_key, manifest_key = f"marketing/clv/{PARTITION}/clv_scores.parquet", f"marketing/clv/{PARTITION}/_manifest.json"
    assert set(stored) == {parquet_key, manifest_key}
    assert rows(stored[parquet_key]) == [
        ("c1", 14.5, "High", "clv_xgboost", "4"),
        ("c2", 4.0, "Medium", "clv_xgboost", "4"),
        ("c3", 0.5, "Low", "clv_xgboost", "4"),
    ]
    manifest = json.loads(stored[manifest_key])
    assert manifest["sha256"] == hashlib.sha256(stored[parquet_key]).hexdigest()
    assert (manifest["row_count"], manifest["cutoff_date"], manifest["model_name"], manifest["model_version"]) == (
        3,
        "2011-12-05",
        "clv_xgboost",
        "4",
    )
    metadata = export_metadata(result)
    assert metadata["uri"] == f"s3://{bucket}/{parquet_key}"
    assert (metadata["dagster/row_count"], metadata["model_version"], metadata["sha256"], metadata["bytes"]) == (
        3,
        "4",
        manifest["sha256"],
        len(stored[parquet_key]),
    )


def test_re_export_overwrites_the_cutoff_in_place(warehouse, bucket, s3_client):
    first = export_metadata(materialize_export(warehouse))
    again = export_metadata(materialize_export(warehouse))
    assert again["sha256"] == first["sha256"]
    assert len(objects(s3_client, bucket)) == 2

    with duckdb.connect(str(warehouse)) as con:  # the cutoff is rescored by a newer model, and tiered again
        con.execute("delete from scoring.clv_scores where cutoff_date = ?", [LATEST])
        con.execute("delete from scoring.value_tiers where cutoff_date = ?", [LATEST])
        write_scores(con, [("c1", LATEST, 20.0, "High", "clv_xgboost", "5"), ("c4", LATEST, 1.0, "Low", "clv_xgboost", "5")])
    rescored = export_metadata(materialize_export(warehouse))

    stored = objects(s3_client, bucket)
    assert sorted(stored) == [f"marketing/clv/{PARTITION}/_manifest.json", f"marketing/clv/{PARTITION}/clv_scores.parquet"]
    parquet = stored[f"marketing/clv/{PARTITION}/clv_scores.parquet"]
    assert rows(parquet) == [("c1", 20.0, "High", "clv_xgboost", "5"), ("c4", 1.0, "Low", "clv_xgboost", "5")]
    manifest = json.loads(stored[f"marketing/clv/{PARTITION}/_manifest.json"])
    assert (manifest["row_count"], manifest["model_version"]) == (2, "5")
    assert manifest["sha256"] == hashlib.sha256(parquet).hexdigest() == rescored["sha256"] != first["sha256"]


def test_scores_whose_tiers_are_not_computed_yet_are_not_exported(warehouse, monkeypatch, tmp_path):
    monkeypatch.setenv("CLV_EXPORT_URI", str(tmp_path / "exports"))
    with duckdb.connect(str(warehouse)) as con:  # rescored by a newer model; value_tiers still holds version 4's tiers
        con.execute(
            "update scoring.clv_scores set model_version = '5', predicted_clv = predicted_clv + 1 where cutoff_date = ?", [LATEST]
        )
    with pytest.raises(dg.Failure) as failure:
        materialize_export(warehouse)
    assert failure.value.description == (
        "3 of 3 scores of the latest cutoff have no value tier of those scores in scoring.value_tiers: "
        "materialize scoring/value_tiers after scoring/clv_scores."
    )
    assert not (tmp_path / "exports").exists()


def test_missing_bucket_fails_with_one_line_naming_the_uri(warehouse, aws_env, monkeypatch):
    uri = f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/marketing/clv"
    monkeypatch.setenv("CLV_EXPORT_URI", uri)
    with pytest.raises(dg.Failure) as failure:
        materialize_export(warehouse)
    message = failure.value.description
    assert message.startswith(f"Cannot export to {uri}: bucket ") and "does not exist" in message
    assert "\n" not in message


def read_folder_export(root: Path) -> list[tuple]:
    return duckdb.sql(
        f"select customer_id, cutoff_date, model_version from read_parquet('{root}/clv_scores/*/*.parquet', "
        "hive_partitioning = true) order by customer_id"
    ).fetchall()


def test_default_exports_to_the_state_directory(warehouse, monkeypatch, tmp_path):
    from clv_platform import settings

    monkeypatch.setenv("CLV_HOME", str(tmp_path / "clv_home"))
    monkeypatch.delenv("CLV_EXPORT_URI", raising=False)
    metadata = export_metadata(materialize_export(warehouse))

    root = tmp_path / "clv_home" / "exports"
    assert settings.exports_dir() == root
    assert metadata["uri"] == str(root / PARTITION / "clv_scores.parquet")
    assert read_folder_export(root) == [("c1", LATEST, "4"), ("c2", LATEST, "4"), ("c3", LATEST, "4")]
    manifest = json.loads((root / PARTITION / "_manifest.json").read_text())
    assert manifest["sha256"] == hashlib.sha256((root / PARTITION / "clv_scores.parquet").read_bytes()).hexdigest()


def test_export_uri_names_a_local_folder(warehouse, monkeypatch, tmp_path):
    monkeypatch.setenv("CLV_HOME", str(tmp_path / "clv_home"))
    monkeypatch.setenv("CLV_EXPORT_URI", str(tmp_path / "shared" / "marketing"))
    materialize_export(warehouse)

    assert read_folder_export(tmp_path / "shared" / "marketing") == [
        ("c1", LATEST, "4"),
        ("c2", LATEST, "4"),
        ("c3", LATEST, "4"),
    ]
    assert not (tmp_path / "clv_home" / "exports").exists()
