"""scoring/clv_scores, scoring/value_tiers, scoring/clv_explanations and the export, materialized for real.

Real models, fitted on a small examples frame with a known signal and registered in a real MLflow store:
the XGBoost rung (BTYD stacked, as the ladder fits it) and BG/NBD + Gamma-Gamma, a baseline without
per-feature contributions. Each is made the champion in turn; ``marts.customer_features`` is a table
written here, so only the scoring assets run.
"""

from __future__ import annotations

import os

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
from dagster_duckdb import DuckDBResource

from clv_platform.ml.features import LABEL_COLUMN
from clv_platform.ml.synthetic import make_examples

pytestmark = pytest.mark.integration

CUTOFFS = ("2024-01-01", "2024-04-01", "2024-07-01", "2024-10-01")
FAST = {"n_estimators": 80, "learning_rate": 0.2}


@pytest.fixture(scope="module")
def models(clv_state):
    """The fitted XGBoost and BTYD rungs and their registered versions of ``clv_model``."""
    from clv_platform.lib.resources import MlflowResource
    from clv_platform.ml import registry
    from clv_platform.ml.baselines import BTYDModel
    from clv_platform.ml.train import XGBoostModel

    # This module's store for tracking and registry alike: an earlier module's assets set mlflow's
    # process-wide registry URI, which registry's own calls do not reset.
    MlflowResource(tracking_uri=os.environ["MLFLOW_TRACKING_URI"]).activate()

    examples = make_examples(600, cutoffs=CUTOFFS, seed=1)
    train = examples[pd.to_datetime(examples["cutoff_date"]) < pd.Timestamp(CUTOFFS[-1])]
    btyd = BTYDModel().fit(train)
    fitted = {"btyd": btyd, "xgboost": XGBoostModel(FAST, objectives=("tweedie",), stack_btyd=True, btyd=btyd).fit(train)}
    versions = {}
    for name, model in fitted.items():
        reference = registry.build_reference(train, model.predict(train))
        versions[name] = registry.log_estimator(model, reference=reference, data_version="test", code_version="test").version
    return examples, fitted, versions


def _write_features(warehouse: str, examples: pd.DataFrame, cutoff: str) -> pd.DataFrame:
    features = examples[pd.to_datetime(examples["cutoff_date"]) == pd.Timestamp(cutoff)].drop(columns=[LABEL_COLUMN])
    with duckdb.connect(warehouse) as con:
        con.execute("create schema if not exists marts")
        con.register("_features", features)
        con.execute("create or replace table marts.customer_features as select * from _features")
    return features


def _score(champion_version: str) -> dict[str, dict]:
    """Point ``champion`` at the version and materialize scores, tiers, explanations and the export."""
    from clv_platform.defs.resources import s3_from_environment
    from clv_platform.defs.scoring.assets import clv_scores, value_tiers
    from clv_platform.defs.scoring.explanations import clv_explanations
    from clv_platform.defs.scoring.export import clv_scores_export
    from clv_platform.lib.resources import MlflowResource
    from clv_platform.ml import registry

    registry.set_alias("clv_model", registry.CHAMPION_ALIAS, champion_version)
    result = dg.materialize(
        [clv_scores, value_tiers, clv_explanations, clv_scores_export],
        resources={
            "warehouse": DuckDBResource(database=os.environ["CLV_WAREHOUSE_PATH"]),
            "mlflow": MlflowResource(tracking_uri=os.environ["MLFLOW_TRACKING_URI"]),
            "s3": s3_from_environment(),
        },
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    return {
        "/".join(event.asset_key.path): {k: v.value for k, v in event.materialization.metadata.items()}
        for event in result.get_asset_materialization_events()
    }


def _frame(sql: str, *params) -> pd.DataFrame:
    with duckdb.connect(os.environ["CLV_WAREHOUSE_PATH"], read_only=True) as con:
        return con.execute(sql, list(params)).df()


def test_an_xgboost_champion_explains_every_scored_customer(models):
    from clv_platform.ml.explain import top_drivers, xgb_contributions

    examples, fitted, versions = models
    features = _write_features(os.environ["CLV_WAREHOUSE_PATH"], examples, CUTOFFS[-1])
    metadata = _score(versions["xgboost"])

    scores = _frame("select * from scoring.clv_scores order by customer_id")
    explained = _frame("select * from scoring.clv_explanations order by customer_id")
    assert "value_tier" not in scores.columns
    assert len(scores) > 100 and explained["customer_id"].tolist() == scores["customer_id"].tolist()
    assert set(explained["model_version"]) == {versions["xgboost"]} and set(explained["method"]) == {"treeshap_approx"}
    assert set(explained["contribution_scale"]) == {"log_revenue"}
    assert explained["driver_1"].notna().all() and explained["drivers"].str.len().gt(0).all()

    # Each row's drivers are those of that customer's own features, from the booster directly.
    model = fitted["xgboost"]
    rows = features.set_index("customer_id").loc[explained["customer_id"]].reset_index()
    inputs = rows.assign(
        btyd_expected_revenue=model.btyd.predict(rows), btyd_probability_alive=model.btyd.probability_alive(rows)
    )
    expected = top_drivers(xgb_contributions(model.model_, inputs, approx=True), k=3)
    assert explained["driver_1"].tolist() == expected["driver_1"].tolist()
    np.testing.assert_allclose(explained["driver_2_contribution"], expected["driver_2_contribution"], rtol=1e-6)
    assert explained["drivers"].tolist() == expected["drivers"].tolist()

    about = metadata["scoring/clv_explanations"]
    assert (about["model_rung"], about["method"], about["dagster/row_count"]) == ("xgboost", "treeshap_approx", len(scores))
    assert about["explain_seconds"] > 0
    assert about["most_common_first_driver"] == explained["driver_1"].value_counts().head(10).to_dict()


def test_value_tiers_are_the_quantiles_of_the_scores_and_reach_the_export(models):
    from clv_platform import settings

    _, _, versions = models
    scores = _frame("select * from scoring.clv_scores order by customer_id")
    tiers = _frame("select * from scoring.value_tiers order by customer_id")
    values = scores["predicted_clv"].to_numpy()
    medium, high = np.quantile(values, [0.5, 0.9])
    expected = np.where(values > high, "High", np.where(values > medium, "Medium", "Low"))
    assert tiers["value_tier"].tolist() == expected.tolist()
    assert tiers["predicted_clv"].tolist() == values.tolist()
    assert set(tiers["medium_cut_point"]) == {medium} and set(tiers["high_cut_point"]) == {high}
    assert set(tiers["model_version"]) == {versions["xgboost"]}

    files = f"{settings.exports_dir()}/clv_scores/*/*.parquet"
    export = duckdb.sql(f"select * from read_parquet('{files}', hive_partitioning = true) order by customer_id").df()
    assert export["value_tier"].tolist() == tiers["value_tier"].tolist()
    assert set(export["model_version"]) == {versions["xgboost"]}


def test_a_baseline_champion_without_contributions_writes_rows_saying_so(models):
    _, _, versions = models
    before = _frame("select count(*) as n from scoring.clv_scores")["n"].iloc[0]
    metadata = _score(versions["btyd"])

    # Rescoring the same cutoff replaces its rows in every table.
    for table in ("clv_scores", "value_tiers", "clv_explanations"):
        frame = _frame(f"select model_version, count(*) as n from scoring.{table} group by all")
        assert frame.values.tolist() == [[versions["btyd"], before]], table
    explained = _frame("select * from scoring.clv_explanations")
    assert set(explained["method"]) == {"none"}
    assert set(explained["drivers"]) == {"no drivers: the btyd model has no additive per-feature contributions"}
    assert explained[["driver_1", "driver_2", "driver_3", "driver_1_contribution", "contribution_scale"]].isna().all().all()
    assert metadata["scoring/clv_explanations"]["method"] == "none"
    assert metadata["scoring/value_tiers"]["model_version"] == versions["btyd"]


def test_scoring_another_cutoff_keeps_the_earlier_one(models):
    examples, _, versions = models
    earlier = _frame("select count(*) as n from scoring.clv_scores")["n"].iloc[0]
    _write_features(os.environ["CLV_WAREHOUSE_PATH"], examples, CUTOFFS[-2])
    metadata = _score(versions["xgboost"])

    for table in ("clv_scores", "value_tiers", "clv_explanations"):
        counts = _frame(f"select cutoff_date, model_version, count(*) as n from scoring.{table} group by all order by 1")
        assert counts["model_version"].tolist() == [versions["xgboost"], versions["btyd"]], table
        assert counts["n"].iloc[1] == earlier, table
    # Tiers and explanations were made for the cutoff just scored, which is not the latest one stored.
    assert metadata["scoring/value_tiers"]["cutoff_date"] == CUTOFFS[-2]


def test_the_steps_after_scoring_read_its_cutoff_and_window_from_the_warehouse(models):
    """Tiers, explanations and drift in a run of their own, on an instance that never saw the scoring's events."""
    from clv_platform.defs.monitoring.assets import drift_report
    from clv_platform.defs.scoring.assets import ScoringConfig, clv_scores, value_tiers
    from clv_platform.defs.scoring.explanations import clv_explanations
    from clv_platform.lib.resources import DriftPolicy, MlflowResource
    from clv_platform.ml import registry, scoring

    _, _, versions = models
    resources = {
        "warehouse": DuckDBResource(database=os.environ["CLV_WAREHOUSE_PATH"]),
        "mlflow": MlflowResource(tracking_uri=os.environ["MLFLOW_TRACKING_URI"]),
        "drift_policy": DriftPolicy(),
    }
    # The earlier of the two stored cutoffs is rescored with a narrower activity window.
    registry.set_alias("clv_model", registry.CHAMPION_ALIAS, versions["xgboost"])
    scored = dg.materialize(
        [clv_scores],
        resources=resources,
        run_config=dg.RunConfig(ops={clv_scores.op.name: ScoringConfig(active_within_days=120)}),
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert scored.success
    rescored = _frame("select count(*) as n from scoring.clv_scores where cutoff_date = ?", CUTOFFS[-2])["n"].iloc[0]

    after = dg.materialize(
        [value_tiers, clv_explanations, drift_report],
        resources=resources,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert after.success, [e.event_specific_data.error.message for e in after.all_events if e.is_step_failure]
    metadata = {
        "/".join(e.asset_key.path): {k: v.value for k, v in e.materialization.metadata.items()}
        for e in after.get_asset_materialization_events()
    }
    # The cutoff just scored, not the latest one stored (CUTOFFS[-1]).
    assert metadata["scoring/value_tiers"]["cutoff_date"] == metadata["scoring/clv_explanations"]["cutoff_date"] == CUTOFFS[-2]
    tiered = _frame("select count(*) as n from scoring.value_tiers where cutoff_date = ?", CUTOFFS[-2])["n"].iloc[0]
    assert tiered == rescored
    # The drift reference is filtered by the window that chose who was scored.
    drift = metadata["monitoring/drift_report"]
    reference = registry.load_reference("clv_model", versions["xgboost"])
    assert (drift["active_within_days"], drift["cutoff_date"]) == (120, CUTOFFS[-2])
    assert drift["reference_rows"] == len(scoring.active_customers(reference, 120)) < len(reference)


# What a source's text fields can carry, and what a spreadsheet opening the export would run.
FORMULAS = ["=cmd|' /C calc'!A0", "+SUM(1,2)", "@SUM(A1)", "-2+3"]


def test_formulas_in_a_source_reach_the_export_as_inert_text(models, tmp_path, materialize_raw):
    import json

    from clv_platform import settings

    examples, _, versions = models
    # A real file through ingestion: the formulas are stored as they are, in every text field.
    log = pd.DataFrame(
        {
            "InvoiceNo": ["536365", "536366", "536367", "536368", "536369"],
            "StockCode": ["85123A"] * 5,
            "Description": [*FORMULAS, "WHITE HANGING HEART"],
            "Quantity": [6, 2, 1, 3, 4],
            "InvoiceDate": ["2024-09-02 08:26"] * 5,
            "UnitPrice": [2.55, 3.39, 1.0, 7.65, 4.25],
            "CustomerID": [*FORMULAS, "c000001"],
            "Country": [*reversed(FORMULAS), "France"],
        }
    )
    log.to_csv(tmp_path / "sales.csv", index=False)
    spec = tmp_path / "source.yaml"
    spec.write_text("transactions: {kind: files, path: sales.csv, preset: online_retail}\n")
    warehouse = os.environ["CLV_WAREHOUSE_PATH"]
    materialize_raw(spec, warehouse, pd.Timestamp("2024-09-02").date(), pd.Timestamp("2024-09-02").date())
    raw = _frame("select customer_id, description, country from raw.transactions order by invoice_no")
    assert raw.values.tolist() == log[["CustomerID", "Description", "Country"]].values.tolist()

    # Those customers scored by the real champion and exported: the cells are inert text, the numbers numbers.
    features = examples[pd.to_datetime(examples["cutoff_date"]) == pd.Timestamp(CUTOFFS[-1])].reset_index(drop=True)
    active = features.index[features["T"] - features["recency"] <= 365][: len(FORMULAS)]  # scored customers
    features.loc[active, "customer_id"] = FORMULAS
    with duckdb.connect(warehouse) as con:
        con.execute("create schema if not exists marts")
        con.register("_features", features.drop(columns=[LABEL_COLUMN]))
        con.execute("create or replace table marts.customer_features as select * from _features")
    metadata = _score(versions["xgboost"])

    partition = settings.exports_dir() / f"clv_scores/cutoff_date={CUTOFFS[-1]}"
    export = duckdb.sql(f"select * from read_parquet('{partition}/clv_scores.parquet')").df()
    scores = _frame("select customer_id, predicted_clv from scoring.clv_scores where cutoff_date = ?", CUTOFFS[-1])
    expected = dict(
        zip(scores["customer_id"].map(lambda c: "'" + c if c in FORMULAS else c), scores["predicted_clv"], strict=True)
    )
    assert dict(zip(export["customer_id"], export["predicted_clv"], strict=True)) == expected
    assert {"'" + formula for formula in FORMULAS} <= set(export["customer_id"])
    assert not export["customer_id"].isin(FORMULAS).any()
    assert str(export["predicted_clv"].dtype) == "float64" and set(export["value_tier"]) <= {"Low", "Medium", "High"}
    manifest = json.loads((partition / "_manifest.json").read_text())
    assert manifest["neutralized_cells"] == {"customer_id": len(FORMULAS)}
    assert metadata["scoring/clv_scores_export"]["neutralized_cells"] == {"customer_id": len(FORMULAS)}
