"""Shadow scoring and the challenger's alias history, on a real warehouse, a real MLflow registry and real assets.

Two registered versions of ``clv_model`` fitted on a synthetic history: the spend-rate heuristic as champion and
the linear rung as challenger (their predictions differ in level and in ranking). ``scoring/clv_scores``,
``scoring/value_tiers`` and ``scoring/shadow_scores`` are materialized as the weekly job does; the shadow table and
its metadata are checked against the models run again here and the comparison computed another way.
"""

from __future__ import annotations

import os

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
from dagster_duckdb import DuckDBResource

pytestmark = pytest.mark.integration

MODEL = "clv_model"


@pytest.fixture(scope="module")
def planted(clv_state):
    """The warehouse's features at one cutoff and two versions in the registry: v1 champion, v2 challenger."""
    from clv_platform.ml import registry
    from clv_platform.ml.baselines import HeuristicModel, LinearModel
    from clv_platform.ml.synthetic import make_examples

    examples = make_examples(n_customers=300, cutoffs=("2024-01-01", "2024-07-01"), seed=5)
    train = examples[examples["cutoff_date"] == examples["cutoff_date"].min()].reset_index(drop=True)
    features = examples[examples["cutoff_date"] == examples["cutoff_date"].max()].reset_index(drop=True)
    versions = {}
    for model in (HeuristicModel().fit(train), LinearModel().fit(train)):
        logged = registry.log_estimator(
            model,
            reference=registry.build_reference(features, model.predict(features)),
            data_version="planted",
            code_version="test",
            model_name=MODEL,
        )
        versions[model.name] = logged.version
    assert versions == {"heuristic": "1", "linear": "2"}
    registry.set_alias(MODEL, registry.CHAMPION_ALIAS, "1")
    registry.set_alias(MODEL, registry.CHALLENGER_ALIAS, "2")
    with duckdb.connect(os.environ["CLV_WAREHOUSE_PATH"]) as con:
        con.execute("create schema if not exists marts")
        con.register("_features", features.drop(columns=["future_revenue"]))
        con.execute("create table marts.customer_features as select * from _features")
    return features


def _materialize(assets, instance=None, run_config=None):
    from clv_platform.lib.resources import MlflowResource

    return dg.materialize(
        assets,
        resources={
            "warehouse": DuckDBResource(database=os.environ["CLV_WAREHOUSE_PATH"]),
            "mlflow": MlflowResource(tracking_uri=os.environ["MLFLOW_TRACKING_URI"]),
        },
        instance=instance or dg.DagsterInstance.ephemeral(),
        run_config=run_config,
        raise_on_error=False,
    )


def _frame(sql: str) -> pd.DataFrame:
    with duckdb.connect(os.environ["CLV_WAREHOUSE_PATH"], read_only=True) as con:
        return con.execute(sql).df()


def _shadow_metadata(result) -> dict:
    from clv_platform.defs.scoring.shadow import shadow_scores

    (event,) = result.asset_materializations_for_node(shadow_scores.op.name)
    return {key: value.value for key, value in event.metadata.items()}


def test_the_challenger_scores_every_active_customer_beside_the_champion(planted):
    from clv_platform.defs.scoring.assets import clv_scores, value_tiers
    from clv_platform.defs.scoring.shadow import shadow_scores
    from clv_platform.ml import registry
    from clv_platform.ml.scoring import active_customers

    result = _materialize([clv_scores, value_tiers, shadow_scores])
    assert result.success
    shadow = _frame("select * from scoring.shadow_scores order by customer_id")
    scores = _frame("select * from scoring.clv_scores order by customer_id")
    tiers = _frame("select * from scoring.value_tiers order by customer_id")

    # Every customer the batch scored (active within 365 days), no one else: 204 of the 300.
    active = active_customers(planted, 365).sort_values("customer_id").reset_index(drop=True)
    assert len(active) == 204
    assert shadow["customer_id"].tolist() == scores["customer_id"].tolist() == active["customer_id"].tolist()
    assert set(shadow["champion_version"]) == {"1"} and set(shadow["challenger_version"]) == {"2"}
    assert (shadow["cutoff_date"] == scores["cutoff_date"]).all()
    # The champion's side is the batch itself; the challenger's is the linear version run again here.
    np.testing.assert_array_equal(shadow["champion_prediction"].to_numpy(), scores["predicted_clv"].to_numpy())
    linear = registry.load_model_version(MODEL, "2")
    expected = np.clip(registry.predict(linear, active)["predicted_clv"].to_numpy(), 0.0, None)
    np.testing.assert_array_equal(shadow["challenger_prediction"].to_numpy(), expected)
    assert not np.allclose(expected, scores["predicted_clv"].to_numpy())
    # Both tiered at the batch's cut points: the champion's tier is the batch's tier.
    assert shadow["champion_tier"].tolist() == tiers["value_tier"].tolist()
    medium, high = float(tiers["medium_cut_point"].iloc[0]), float(tiers["high_cut_point"].iloc[0])
    by_hand = np.where(expected > high, "High", np.where(expected > medium, "Medium", "Low"))
    assert shadow["challenger_tier"].tolist() == by_hand.tolist()

    metadata = _shadow_metadata(result)
    champion, challenger = scores["predicted_clv"].to_numpy(), expected
    assert metadata["compared"] is True and metadata["dagster/row_count"] == 204
    assert (metadata["champion_version"], metadata["challenger_version"]) == ("1", "2")
    assert (metadata["champion_rung"], metadata["challenger_rung"], metadata["challenger_named_by"]) == (
        "heuristic",
        "linear",
        "alias",
    )
    assert metadata["mean_shift"] == pytest.approx(challenger.sum() / champion.sum() - 1, rel=1e-12)
    from scipy.stats import spearmanr

    assert metadata["spearman"] == pytest.approx(spearmanr(champion, challenger).statistic, rel=1e-12)
    # Top decile: ceil(20.4) = 21 customers by prediction (no ties at the edge here).
    top = {name: set(shadow.nlargest(21, f"{name}_prediction")["customer_id"]) for name in ("champion", "challenger")}
    assert metadata["top_decile_overlap"] == pytest.approx(len(top["champion"] & top["challenger"]) / 21)
    moves = pd.crosstab(shadow["champion_tier"], shadow["challenger_tier"])
    assert metadata["customers_changing_tier"] == int((shadow["champion_tier"] != shadow["challenger_tier"]).sum()) > 0
    for champion_tier, row in moves.iterrows():
        counts = [int(row.get(tier, 0)) for tier in ("Low", "Medium", "High")]
        assert f"| {champion_tier} | {' | '.join(map(str, counts))} |" in metadata["tier_moves"]
    assert metadata["cut_points"] == [medium, high]


def test_with_no_distinct_challenger_it_says_so_and_succeeds(planted):
    from clv_platform.defs.scoring.assets import clv_scores, value_tiers
    from clv_platform.defs.scoring.shadow import shadow_scores
    from clv_platform.ml import registry

    assert _materialize([clv_scores, value_tiers, shadow_scores]).success
    assert len(_frame("select * from scoring.shadow_scores")) == 204

    # A version named in the config that is the champion: nothing to compare, and the old comparison is gone.
    same = _materialize([shadow_scores], run_config={"ops": {"scoring__shadow_scores": {"config": {"challenger_version": "1"}}}})
    assert same.success
    metadata = _shadow_metadata(same)
    assert (metadata["compared"], metadata["dagster/row_count"], metadata["challenger_version"]) == (False, 0, "")
    assert metadata["reason"] == "no challenger distinct from the champion v1: the config names v1; nothing to compare"
    assert len(_frame("select * from scoring.shadow_scores")) == 0

    # No challenger alias at all.
    registry.delete_alias(MODEL, registry.CHALLENGER_ALIAS)
    try:
        unset = _materialize([shadow_scores])
        assert unset.success
        assert _shadow_metadata(unset)["reason"] == (
            "no challenger distinct from the champion v1: the challenger alias is not set; nothing to compare"
        )
        # A version named in the config is shadowed without the alias.
        named = _materialize(
            [shadow_scores], run_config={"ops": {"scoring__shadow_scores": {"config": {"challenger_version": "v2"}}}}
        )
        assert named.success and _shadow_metadata(named)["challenger_named_by"] == "config"
        assert set(_frame("select challenger_version from scoring.shadow_scores")["challenger_version"]) == {"2"}
        # A version that does not exist is a user error, said in one line.
        missing = _materialize(
            [shadow_scores], run_config={"ops": {"scoring__shadow_scores": {"config": {"challenger_version": "9"}}}}
        )
        assert not missing.success
        from clv_platform.cli import step_error

        (message,) = [step_error(e)[0] for e in missing.all_events if e.is_step_failure]
        assert message == (
            "ShadowConfig.challenger_version: model 'clv_model' has no version '9' (registered versions: 1, 2)."
        ), message
    finally:
        registry.set_alias(MODEL, registry.CHALLENGER_ALIAS, "2")


def _outcome(evaluation_id: str, passed: bool):
    from clv_platform.ml.gates import ChampionDecision, GateVerdict
    from clv_platform.ml.outcome import EvaluationOutcome

    gates = {name: (True, "passed") for name in ("beats_baselines", "normalized_gini_floor", "fairness_floor", "mean_shift")}
    gates["beats_champion"] = (passed, "beats the champion" if passed else "MAE 9.0 is not < champion's 8.0 x (1 - 0.01)")
    decision = ChampionDecision("keep", "champion", "the champion stays", False)
    return EvaluationOutcome(
        evaluation_id, pd.Timestamp.now("UTC").tz_localize(None).isoformat(), MODEL, {"linear": "2"}, "linear", "",
        GateVerdict(passed, gates), decision, "1", None, "2024-07-01", (), 90, 0, 0, "d", "", "c",
        pd.DataFrame(), pd.DataFrame(), 1.0, True,
    )  # fmt: skip


def test_ml_challenger_records_each_move_of_the_challenger_alias(planted):
    import subprocess
    import sys
    from pathlib import Path

    from clv_platform.defs.training.assets import challenger
    from clv_platform.ml import registry
    from clv_platform.ml.lifecycle import champion_stack
    from clv_platform.ml.outcome import load_history, save_outcome

    registry.delete_alias(MODEL, registry.CHALLENGER_ALIAS)
    warehouse = os.environ["CLV_WAREHOUSE_PATH"]
    for evaluation_id, passed in (("e-pass", True), ("e-pass-again", True), ("e-refused", False)):
        with duckdb.connect(warehouse) as con:
            save_outcome(con, _outcome(evaluation_id, passed))
        result = _materialize([challenger])
        assert result.success is passed
        alias = registry.get_alias_version(MODEL, registry.CHALLENGER_ALIAS)
        assert (str(alias.version) if alias else None) == ("2" if passed else None)
    with duckdb.connect(warehouse, read_only=True) as con:
        history = [r for r in load_history(con, MODEL) if r.alias == "challenger"]
    # Set by the first pass, unchanged by the second (no move, no row), removed by the refusal.
    assert [(r.evaluation_id, r.from_version, r.champion_version, r.action, r.champion_rung) for r in history] == [
        ("e-pass", None, "2", "set", "linear"),
        ("e-refused", "2", "", "remove", ""),
    ]
    assert history[0].reason == "linear v2 passed every gate" and history[0].who.startswith("ml/challenger (run ")
    assert history[1].reason == "linear v2 was refused: MAE 9.0 is not < champion's 8.0 x (1 - 0.01)"
    # They are no champions: the stack of champions to roll back through holds only the champion.
    assert champion_stack(history, "1") == ["1"]

    done = subprocess.run(
        [str(Path(sys.executable).parent / "clv-platform"), "model", "history"],
        env={**os.environ, "CLV_WAREHOUSE_PATH": warehouse},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if "| challenger |" in line]
    assert len(rows) == 2 and "- (removed)" in rows[0] and "| v2 |" in rows[1], done.stdout
