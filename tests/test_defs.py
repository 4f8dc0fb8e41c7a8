"""The code location loads and holds what the README says it holds."""

from __future__ import annotations

import dagster as dg
import pytest


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    from clv_platform.definitions import defs as build

    return build()


EXPECTED_ASSETS = {
    ("raw", "transactions"): "ingestion",
    ("raw", "behavioral_events"): "ingestion",
    ("raw", "customers"): "ingestion",
    ("raw", "transactions_quarantine"): "ingestion",
    ("raw", "behavioral_events_quarantine"): "ingestion",
    ("staging", "stg_shop__transactions"): "features",
    ("staging", "stg_shop__behavioral_events"): "features",
    ("staging", "stg_shop__customers"): "features",
    ("intermediate", "int_customer_days"): "features",
    ("intermediate", "int_order_value_caps"): "features",
    ("marts", "customer_features"): "features",
    ("marts", "training_examples"): "features",
    ("ml", "model_evaluation"): "training",
    ("ml", "challenger"): "training",
    ("ml", "champion"): "training",
    ("scoring", "customer_segments"): "scoring",
    ("scoring", "clv_scores"): "scoring",
    ("scoring", "clv_scores_export"): "scoring",
    ("scoring", "value_tiers"): "scoring",
    ("scoring", "clv_explanations"): "scoring",
    ("scoring", "shadow_scores"): "scoring",
    ("serving", "online_features"): "serving",
    ("monitoring", "drift_report"): "monitoring",
    ("monitoring", "data_profile"): "monitoring",
    ("ml", "rollout_analysis"): "monitoring",
}


def test_assets_and_groups(defs):
    graph = defs.resolve_asset_graph()
    groups = {key.path and tuple(key.path): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    for key, group in EXPECTED_ASSETS.items():
        assert key in groups, f"missing asset {'/'.join(key)}"
        assert groups[key] == group, f"{'/'.join(key)} in group {groups[key]}, expected {group}"


def test_lineage_runs_raw_to_drift(defs):
    graph = defs.resolve_asset_graph()
    upstream = graph.get(dg.AssetKey(["monitoring", "drift_report"])).parent_keys
    assert dg.AssetKey(["scoring", "clv_scores"]) in upstream
    ancestors = graph.asset_dep_graph["upstream"]

    def all_upstream(key):
        seen, todo = set(), [key]
        while todo:
            for parent in ancestors.get(todo.pop(), ()):
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
        return seen

    assert {
        dg.AssetKey(["raw", "transactions"]),
        dg.AssetKey(["marts", "training_examples"]),
        dg.AssetKey(["ml", "champion"]),
    } <= all_upstream(dg.AssetKey(["monitoring", "drift_report"]))


def test_tiers_and_explanations_read_the_scores_and_ship_with_them(defs):
    graph = defs.resolve_asset_graph()
    scores = dg.AssetKey(["scoring", "clv_scores"])
    tiers = dg.AssetKey(["scoring", "value_tiers"])
    assert graph.get(tiers).parent_keys == {scores}
    assert graph.get(dg.AssetKey(["scoring", "clv_explanations"])).parent_keys == {
        scores,
        dg.AssetKey(["marts", "customer_features"]),
    }
    # The analysts' file carries each score's tier.
    assert graph.get(dg.AssetKey(["scoring", "clv_scores_export"])).parent_keys == {scores, tiers}
    # The challenger scores beside the batch, tiered at its cut points; never downstream of the gates' checks,
    # so a refused candidate does not stop it (with no challenger it says so).
    shadow = dg.AssetKey(["scoring", "shadow_scores"])
    assert graph.get(shadow).parent_keys == {scores, tiers}
    for job in ("clv_full_pipeline", "weekly_scoring"):
        selected = defs.resolve_job_def(job).asset_layer.selected_asset_keys
        assert {
            tiers,
            dg.AssetKey(["scoring", "clv_explanations"]),
            dg.AssetKey(["serving", "online_features"]),
            shadow,
        } <= selected, job


def test_the_rollout_analysis_runs_weekly_after_scoring(defs):
    graph = defs.resolve_asset_graph()
    analysis = dg.AssetKey(["ml", "rollout_analysis"])
    assert dg.AssetKey(["scoring", "clv_scores"]) in graph.get(analysis).parent_keys
    for job in ("clv_full_pipeline", "weekly_scoring"):
        assert analysis in defs.resolve_job_def(job).asset_layer.selected_asset_keys, job


def test_data_profile_reads_the_raw_tables(defs):
    node = defs.resolve_asset_graph().get(dg.AssetKey(["monitoring", "data_profile"]))
    assert node.parent_keys == {dg.AssetKey(["raw", name]) for name in ("transactions", "behavioral_events", "customers")}
    assert not node.is_partitioned
    assert set(node.kinds) == {"duckdb"}


def test_dbt_tests_are_asset_checks(defs):
    graph = defs.resolve_asset_graph()
    check_keys = graph.asset_check_keys
    on_marts = {c for c in check_keys if c.asset_key == dg.AssetKey(["marts", "customer_features"])}
    names = {c.name for c in on_marts}
    assert any("unique" in n for n in names) and any("not_null" in n for n in names), names


def test_jobs_schedules_sensors(defs):
    assert {"clv_full_pipeline", "ingest_and_features", "weekly_scoring", "clv_retraining"} <= {
        job.name for job in defs.resolve_all_job_defs()
    }
    schedules = {s.name: s for s in defs.schedules}
    assert schedules["daily_ingest_and_features"].cron_schedule == "0 2 * * *"
    assert schedules["daily_ingest_and_features"].job_name == "ingest_and_features"
    assert schedules["weekly_scoring"].job_name == "weekly_scoring"
    sensors = {s.name: s for s in defs.sensors}
    assert set(sensors) == {"drift_retraining_sensor", "landing_zone_sensor"}
    assert sensors["drift_retraining_sensor"].job_name == "clv_retraining"
    # Off until a user turns it on (README, "Your own data").
    landing = sensors["landing_zone_sensor"]
    assert (landing.job_name, landing.minimum_interval_seconds) == ("ingest_and_features", 30)
    assert landing.default_status == dg.DefaultSensorStatus.STOPPED
    assert landing.required_resource_keys == {"raw_source", "s3"}


def test_model_promotion_job_takes_typed_config(defs):
    job = defs.resolve_job_def("model_promotion")
    fields = job.run_config_schema.config_type.fields["ops"].config_type.fields["move_champion_alias"].config_type
    config = fields.fields["config"].config_type.fields
    assert set(config) == {"action", "version", "mode", "share", "salt", "reason"}
    assert config["reason"].is_required and not any(config[name].is_required for name in ("version", "mode", "share", "salt"))
    assert job.required_resource_keys >= {"warehouse", "mlflow"}


def test_heavy_libraries_not_imported_at_load():
    import subprocess
    import sys

    code = (
        "import sys; from clv_platform.definitions import defs; defs(); "
        "print('heavy:' + ','.join(m for m in ('xgboost', 'mlflow', 'evidently', 'pyspark') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "heavy:", out.stdout


def test_raw_tables_are_daily_partitioned_behind_blocking_checks(defs):
    graph = defs.resolve_asset_graph()
    for name in ("transactions", "behavioral_events"):
        node = graph.get(dg.AssetKey(["raw", name]))
        assert isinstance(node.partitions_def, dg.DailyPartitionsDefinition)
    checks = {
        c.name: c
        for c in defs.resolve_all_asset_specs() and graph.asset_check_keys
        if c.asset_key == dg.AssetKey(["raw", "transactions"])
    }
    assert {
        "schema_matches_contract",
        "input_not_empty",
        "quarantine_share_within_limit",
        "volume_change_within_limit",
        "mean_order_value_stable",
        "countries_stable",
    } <= set(checks)
    blocking = {
        spec.key.name for spec in defs.resolve_assets_def(dg.AssetKey(["raw", "transactions"])).check_specs if spec.blocking
    }
    assert blocking >= set(checks)


def test_the_gates_are_blocking_checks_on_the_challenger_and_scoring_does_not_wait_on_them(defs):
    graph = defs.resolve_asset_graph()
    specs = defs.resolve_assets_def(dg.AssetKey(["ml", "challenger"])).check_specs
    assert {spec.name: spec.blocking for spec in specs} == {
        "beats_champion": True,
        "beats_baselines": True,
        "normalized_gini_floor": True,
        "fairness_floor": True,
        "mean_shift": True,
    }
    evaluation = dg.AssetKey(["ml", "model_evaluation"])
    assert graph.get(dg.AssetKey(["ml", "challenger"])).parent_keys == {evaluation}
    # A refused candidate must not stop scoring with the champion: the champion asset is not downstream of the gates.
    assert graph.get(dg.AssetKey(["ml", "champion"])).parent_keys == {evaluation}
    assert dg.AssetKey(["ml", "champion"]) in graph.get(dg.AssetKey(["scoring", "clv_scores"])).parent_keys


# The stages whose assets hand data on through the warehouse; sensors react to events and may read them.
HAND_OFF_MODULES = (
    "defs/training/assets.py",
    "defs/scoring/assets.py",
    "defs/scoring/explanations.py",
    "defs/scoring/export.py",
    "defs/monitoring/assets.py",
    "cli.py",
)


@pytest.mark.parametrize("module", HAND_OFF_MODULES)
def test_assets_and_the_cli_read_no_materialization_events_for_data(module):
    from pathlib import Path

    import clv_platform

    source = (Path(clv_platform.__file__).parent / module).read_text()
    for call in ("get_latest_materialization_event", "fetch_materializations", "get_event_records"):
        assert call not in source, f"{module} reads {call}: hand data on through a table or an IO manager"


# Run in a fresh interpreter on a state directory that does not exist yet: what importing, then loading, did.
_PROBE = """
import importlib, json, os, pkgutil, sys
from pathlib import Path
home = Path(os.environ["CLV_HOME"])
before = dict(os.environ)
import clv_platform.defs, clv_platform.lib
names = ["clv_platform.definitions", "clv_platform.cli"] + [
    m.name for pkg in (clv_platform.defs, clv_platform.lib) for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")
]
for name in names:
    importlib.import_module(name)
changed = lambda: sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
imported = {"modules": len(names), "environ": changed(), "state": home.exists()}
from clv_platform.definitions import defs
defs()
files = sorted(p.relative_to(home).as_posix() for p in home.rglob("*") if p.is_file()) if home.exists() else []
print(json.dumps({"import": imported, "load": {"environ": changed(), "files": files}}))
"""


def _fresh_process(tmp_path, code: str, **env: str):
    import json
    import os
    import subprocess
    import sys

    environment = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "CLV_WAREHOUSE_PATH", "MLFLOW_TRACKING_URI")}
    environment.update(CLV_HOME=str(tmp_path / "state"), **env)
    done = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_changes_nothing_and_loading_writes_only_the_dbt_manifest(tmp_path):
    seen = _fresh_process(tmp_path, _PROBE)
    assert seen["import"]["modules"] > 20
    # Importing: no variable set, no folder made (nor a dbt parse run).
    assert seen["import"]["environ"] == [] and seen["import"]["state"] is False
    # Loading: the manifest dbt parsed for the asset graph, and nothing else; the environment is left as it was.
    assert seen["load"]["environ"] == []
    assert seen["load"]["files"] == ["dbt/target/manifest.json", "dbt/target/partial_parse.msgpack"]


_BROKEN_SPEC_PROBE = """
import json
import dagster as dg
from clv_platform.cli import step_error
from clv_platform.definitions import defs
from clv_platform.defs.ingestion.assets import IngestConfig, raw_customers
from clv_platform.lib.ingestion import RawSource
graph = defs().resolve_asset_graph()
shown = {}
for key in (["raw", "transactions"], ["raw", "behavioral_events"], ["raw", "customers"]):
    node = graph.get(dg.AssetKey(key))
    shown["/".join(key)] = [node.description, node.metadata.get("source_spec_error")]
result = dg.materialize(
    [raw_customers],
    resources={"raw_source": RawSource(), "warehouse": __import__("dagster_duckdb").DuckDBResource(database=":memory:")},
    run_config=dg.RunConfig(ops={raw_customers.op.name: IngestConfig()}),
    raise_on_error=False,
)
failure = [step_error(e) for e in result.all_events if e.is_step_failure]
print(json.dumps({"shown": shown, "failure": failure}))
"""


def test_a_broken_source_spec_loads_and_shows_its_error_on_the_raw_assets(tmp_path):
    spec = tmp_path / "source.yaml"
    spec.write_text("transactions:\n  kind: files\n  preest: online_retail\n  path: sales.csv\n")
    error = f"{spec}: invalid source config: line 3: unknown key 'preest' in 'transactions'"
    seen = _fresh_process(tmp_path, _BROKEN_SPEC_PROBE, CLV_SOURCE_CONFIG=str(spec))
    for key, (description, metadata) in seen["shown"].items():
        assert description.endswith(f"SOURCE SPEC ERROR: {error}"), key
        assert metadata == error, key
    # Materializing fails with that line, as a user error (the CLI's exit code 2).
    assert seen["failure"] == [[error, True]]
