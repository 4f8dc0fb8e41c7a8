"""The online snapshot on disk: written aside, renamed, its manifest last; a reader sees a whole snapshot or the one before."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from clv_platform.ml import online


def _tables(n: int) -> dict[str, pd.DataFrame]:
    customers = pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "predicted_clv": [float(i) for i in range(n)]})
    small = pd.DataFrame({"cutoff_date": [pd.Timestamp("2025-01-01")]})
    return {
        "customers": customers,
        "raw_customers": customers[["customer_id"]],
        "int_cutoffs": small,
        "int_order_value_caps": small,
        "country_customer_share": pd.DataFrame({"country": ["UK"], "country_customer_share": [1.0]}),
    }


SQL = online.FeatureSql("online", {"raw.transactions": '"online"."raw"."transactions"'}, [])


class _Unwritable:
    """A table whose Parquet write fails half-way through the snapshot."""

    def to_parquet(self, path, index=False):
        path.write_bytes(b"PAR1 half a file")
        raise OSError("disk full")


def test_a_failed_write_leaves_the_previous_snapshot_live_and_nothing_half_written(tmp_path):
    first = online.write_snapshot(tmp_path, _tables(3), SQL, {"cutoff_date": "2025-01-01", "model_version": "1"})
    broken = {**_tables(5), "int_order_value_caps": _Unwritable()}
    with pytest.raises(OSError, match="disk full"):
        online.write_snapshot(tmp_path, broken, SQL, {"cutoff_date": "2025-01-08", "model_version": "2"})

    assert online.read_manifest(tmp_path) == first
    loaded = online.load_snapshot(tmp_path, online.read_manifest(tmp_path))
    assert loaded.tables["customers"]["customer_id"].tolist() == ["c0", "c1", "c2"]
    leftovers = [p.name for p in online.online_dir(tmp_path).iterdir() if p.name.startswith(".")]
    assert leftovers == []
    assert [p.name for p in (online.online_dir(tmp_path) / online.SNAPSHOTS_DIR).iterdir()] == [first["snapshot_id"]]


def test_the_manifest_names_the_new_snapshot_with_its_rows_and_hashes_and_old_ones_are_pruned(tmp_path):
    written = [
        online.write_snapshot(tmp_path, _tables(n), SQL, {"cutoff_date": "2025-01-01", "model_version": str(n)})
        for n in range(1, 6)
    ]
    manifest = json.loads((online.online_dir(tmp_path) / online.MANIFEST_NAME).read_text())
    assert manifest == written[-1]
    assert manifest["rows"] == 5 and manifest["model_version"] == "5"
    assert set(manifest["files"]) == {f"{name}.parquet" for name in online.TABLES} | {online.SQL_FILE}
    kept = sorted(p.name for p in (online.online_dir(tmp_path) / online.SNAPSHOTS_DIR).iterdir())
    assert kept == sorted(w["snapshot_id"] for w in written[-online.KEEP_SNAPSHOTS :])


def test_a_corrupted_snapshot_file_is_refused_by_its_hash(tmp_path):
    manifest = online.write_snapshot(tmp_path, _tables(3), SQL, {"cutoff_date": "2025-01-01"})
    path = online.online_dir(tmp_path) / manifest["path"] / "customers.parquet"
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ValueError, match=r"customers\.parquet does not match the sha256"):
        online.load_snapshot(tmp_path, manifest)


def test_a_snapshot_without_one_of_its_tables_is_refused_before_anything_is_written(tmp_path):
    tables = _tables(2)
    del tables["country_customer_share"]
    with pytest.raises(ValueError, match="country_customer_share"):
        online.write_snapshot(tmp_path, tables, SQL, {})
    assert online.read_manifest(tmp_path) is None


def test_feature_models_come_in_dependency_order_with_their_compiled_sql():
    def node(name, parents, database="online"):
        return {
            "resource_type": "model",
            "name": name,
            "database": database,
            "relation_name": f'"{database}"."s"."{name}"',
            "compiled_code": f"select 1 as {name}",
            "depends_on": {"nodes": [f"model.p.{p}" for p in parents]},
        }

    manifest = {
        "nodes": {
            "model.p.customer_features": node("customer_features", ["b", "a"]),
            "model.p.b": node("b", ["a"]),
            "model.p.a": node("a", []),
            "model.p.unrelated": node("unrelated", []),
        },
        "sources": {},
    }
    database, models = online.feature_models(manifest)
    assert database == "online"
    assert [m.name for m in models] == ["a", "b", "customer_features"]
    manifest["nodes"]["model.p.b"]["compiled_code"] = None
    with pytest.raises(ValueError, match="'b' has no compiled SQL"):
        online.feature_models(manifest)
