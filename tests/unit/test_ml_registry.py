"""MLflow logging of any CLV model as a pyfunc, aliases, and the gates, against a real sqlite store in a temporary folder.

The models here are two small real estimators of tests/unit/fixture_estimators.py (the ladder's own are
tested in tests/component/test_ml_baselines.py and test_ml_ladder.py, and test_ml_train.py).
"""

import os
from pathlib import Path

import numpy as np
import pytest
from fixture_estimators import ConstantModel, SpendRateModel

from clv_platform.ml import registry
from clv_platform.ml.features import FEATURE_COLUMNS, LABEL_COLUMN, PREDICTION_COLUMN
from clv_platform.ml.metrics import mae, normalized_gini, spearman
from clv_platform.ml.synthetic import make_examples


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """CLV_HOME and MLFLOW_TRACKING_URI in a temporary folder, run from another empty folder."""
    root = tmp_path_factory.mktemp("registry")
    workdir = root / "cwd"
    workdir.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLV_HOME", str(root / "clv"))
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        patch.chdir(workdir)
        yield root


@pytest.fixture(scope="module")
def split():
    examples = make_examples(n_customers=300, seed=3)
    last = examples["cutoff_date"].max()
    return examples[examples["cutoff_date"] < last].reset_index(drop=True), examples[examples["cutoff_date"] == last].reset_index(
        drop=True
    )


@pytest.fixture(scope="module")
def models(split):
    train, _ = split
    return {"spend_rate": SpendRateModel().fit(train), "constant": ConstantModel().fit(train)}


def evaluation_metrics(model, valid) -> dict:
    y, p = valid[LABEL_COLUMN].to_numpy(), model.predict(valid)
    return {"mae": mae(y, p), "spearman": spearman(y, p), "normalized_gini": normalized_gini(y, p), "fairness_ratio": 1.0}


def log(model, valid, name, **kwargs):
    return registry.log_estimator(
        model,
        reference=registry.build_reference(valid, model.predict(valid)),
        data_version="d1",
        code_version="abc123",
        model_name=name,
        metrics=evaluation_metrics(model, valid),
        **kwargs,
    )


def test_any_estimator_round_trips_as_a_pyfunc_with_its_card_plots_and_lineage(store, split, models):
    import mlflow

    _, valid = split
    card = "# Model card: clv_roundtrip (spend_rate)\n\nintended use: tests\n"
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 16
    info = log(models["spend_rate"], valid, "clv_roundtrip", model_card=card, plots={"lorenz": png})
    assert (info.version, info.rung, info.model_uri) == ("1", "spend_rate", "models:/clv_roundtrip/1")

    loaded = registry.load_model_version("clv_roundtrip", info.version)
    out = registry.predict(loaded, valid)
    np.testing.assert_allclose(out["predicted_clv"], models["spend_rate"].predict(valid), rtol=1e-12)
    assert out["probability_alive"].isna().all()  # the spend-rate model has no notion of it
    assert registry.estimator_of(loaded).scale == pytest.approx(models["spend_rate"].scale)

    # every model has the same input contract: all features as double, in order
    model_info = mlflow.models.get_model_info(info.model_uri)
    assert model_info.signature.inputs.input_names() == list(FEATURE_COLUMNS)
    assert {spec.type.name for spec in model_info.signature.inputs.inputs} == {"double"}
    assert model_info.signature.outputs.input_names() == ["predicted_clv", "probability_alive"]

    client = mlflow.MlflowClient()
    version = client.get_model_version("clv_roundtrip", "1")
    assert version.description == card
    assert version.tags == {"rung": "spend_rate", "data_version": "d1", "code_version": "abc123"}
    run = client.get_run(info.run_id)
    assert run.data.params["scale"] == str(models["spend_rate"].scale) and run.data.params["horizon_days"] == "90"
    assert run.data.metrics["mae"] == pytest.approx(info.metrics["mae"])
    artifacts = {a.path for a in client.list_artifacts(info.run_id)} | {
        a.path for a in client.list_artifacts(info.run_id, "plots")
    }
    assert {"model_card.md", "reference", "plots/lorenz.png"} <= artifacts
    reference = registry.load_reference("clv_roundtrip", info.version)
    assert list(reference.columns) == ["customer_id", "cutoff_date", *FEATURE_COLUMNS, PREDICTION_COLUMN]


def test_artifacts_go_under_the_state_dir_never_to_cwd_mlruns(store, split, models):
    log(models["constant"], split[1], "clv_artifacts")
    artifact_dir = store / "clv" / "mlartifacts" / registry.DEFAULT_EXPERIMENT_NAME
    files = {p.name for p in artifact_dir.rglob("*") if p.is_file()}
    assert {"MLmodel", "python_model.pkl", "reference.parquet"} <= files
    assert not (Path.cwd() / "mlruns").exists()
    assert Path.cwd() == store / "cwd" and os.listdir(Path.cwd()) == []


def test_an_experiment_on_the_default_mlruns_location_is_refused(store):
    import mlflow

    mlflow.MlflowClient().create_experiment("created_elsewhere")  # no artifact_location: ./mlruns
    with pytest.raises(ValueError, match="created without an artifact_location"):
        registry.ensure_experiment("created_elsewhere")


def test_log_estimator_refuses_bad_input(store, split, models):
    _, valid = split
    with pytest.raises(ValueError, match=r"reference is missing required column.*predicted_clv"):
        registry.log_estimator(models["constant"], reference=valid, data_version="d", code_version="c")
    with pytest.raises(ValueError, match="data_version and code_version"):
        registry.log_estimator(models["constant"], reference=valid, data_version="", code_version="c")
    with pytest.raises(ValueError, match="must be fitted"):
        registry.log_estimator(ConstantModel(), reference=valid, data_version="d", code_version="c")


def test_the_gates_move_the_aliases_a_better_model_in_a_worse_one_out(store, split, models):
    """The flow ml/champion runs: judge on the same window, move challenger then champion, never for a worse model."""
    _, valid = split
    name = "clv_gates"
    # Margins 0 (comparisons are strict) and no Gini floor. The constant model's Spearman is nan (no ranking): no bar to beat.
    policy = registry.GatePolicy(mae_margin=0.0, spearman_margin=0.0, gini_margin=0.0, min_normalized_gini=0.0)
    baselines = {"constant": evaluation_metrics(models["constant"], valid)}

    # First run: no champion; the spend-rate model beats the constant baseline, so it is promoted.
    constant = log(models["constant"], valid, name)
    rate = log(models["spend_rate"], valid, name)
    decision = registry.decide_challenger(rate.metrics, None, baselines, policy)
    assert decision.passed, decision.failures
    choice = registry.decide_champion("spend_rate", decision, None, baselines, policy=policy)
    assert choice.action == "promote" and not choice.baseline_serves
    registry.set_alias(name, registry.CHALLENGER_ALIAS, rate.version)
    registry.set_alias(name, registry.CHAMPION_ALIAS, rate.version)
    assert str(registry.champion_version(name).version) == rate.version == "2"

    # Second run: the constant model as a candidate against that champion is refused; the alias stays.
    champion_model = registry.load_alias(name, registry.CHAMPION_ALIAS)
    champion_pred = registry.predict(champion_model, valid)["predicted_clv"]
    y = valid[LABEL_COLUMN].to_numpy()
    champion_metrics = {
        "mae": mae(y, champion_pred),
        "normalized_gini": normalized_gini(y, champion_pred),
        "spearman": spearman(y, champion_pred),
    }
    worse = log(models["constant"], valid, name)
    rate_metrics = evaluation_metrics(models["spend_rate"], valid)
    decision = registry.decide_challenger(
        evaluation_metrics(models["constant"], valid), champion_metrics, {"spend_rate": rate_metrics}, policy
    )
    assert not decision.passed
    assert any(f.startswith("beats_champion: ") and "normalized Gini 0.0000 is not > champion's" in f for f in decision.failures)
    choice = registry.decide_champion(
        "constant", decision, champion_metrics, {"spend_rate": rate_metrics}, champion_is_baseline=False, policy=policy
    )
    assert choice.action == "keep" and "champion stays" in choice.reason
    assert str(registry.champion_version(name).version) == "2"
    assert str(registry.get_alias_version(name, registry.CHALLENGER_ALIAS).version) == "2"
    assert sorted(str(v.version) for v in _versions(name)) == [constant.version, "2", worse.version]

    registry.delete_alias(name, registry.CHALLENGER_ALIAS)
    assert registry.get_alias_version(name, registry.CHALLENGER_ALIAS) is None
    assert registry.champion_version("no_such_model") is None


def _versions(name):
    import mlflow

    return mlflow.MlflowClient().search_model_versions(f"name='{name}'")


# The gates as a pure decision ---------------------------------------------------------------------

BTYD = {"mae": 100.0, "spearman": 0.50, "normalized_gini": 0.60}
HEURISTIC = {"mae": 120.0, "spearman": 0.40, "normalized_gini": 0.55}
CHAMPION = {"mae": 95.0, "spearman": 0.56, "normalized_gini": 0.65}
GOOD = {"mae": 90.0, "spearman": 0.60, "normalized_gini": 0.70, "fairness_ratio": 0.9}


def test_a_better_model_passes_every_gate():
    decision = registry.decide_challenger(GOOD, CHAMPION, {"btyd": BTYD, "heuristic": HEURISTIC})
    assert decision.passed and decision.failures == []
    assert [r.split(":")[0] for r in decision.reasons] == [
        "beats_champion",
        "beats_baselines",
        "normalized_gini_floor",
        "fairness_floor",
    ]


@pytest.mark.parametrize(
    ("change", "failed"),
    [
        # 94.1 > 95 x 0.99 = 94.05: better than the champion, but not by the 1 % margin; beats the baselines
        ({"mae": 94.1}, {"beats_champion": "MAE 94.1000 is not < champion's 95.0000 x (1 - 0.01)"}),
        # 0.565 < 0.56 + 0.01
        ({"spearman": 0.565}, {"beats_champion": "Spearman 0.5650 is not > champion's 0.5600 + 0.01"}),
        # 0.605 < BTYD's 0.60 + 0.01 and the champion's 0.65 + 0.01; above the heuristic's 0.55 + 0.01
        (
            {"normalized_gini": 0.605, "spearman": 0.60},
            {
                "beats_champion": "normalized Gini 0.6050 is not > champion's 0.6500 + 0.01",
                "beats_baselines": "btyd: normalized Gini 0.6050 is not > btyd's 0.6000 + 0.01",
            },
        ),
        ({"fairness_ratio": 0.79}, {"fairness_floor": "fairness ratio 0.7900 is not >= 0.8"}),
        # a nan beats nothing: refused against the champion and every baseline
        (
            {"mae": float("nan")},
            {
                "beats_champion": "MAE nan is not < champion's 95.0000 x (1 - 0.01)",
                "beats_baselines": "btyd: MAE nan is not < btyd's 100.0000 x (1 - 0.01); "
                "heuristic: MAE nan is not < heuristic's 120.0000 x (1 - 0.01)",
            },
        ),
    ],
)
def test_a_worse_model_is_refused_by_exactly_the_gates_it_fails(change, failed):
    decision = registry.decide_challenger({**GOOD, **change}, CHAMPION, {"btyd": BTYD, "heuristic": HEURISTIC})
    assert not decision.passed
    assert {gate: why for gate, (ok, why) in decision.gates.items() if not ok} == failed


def test_the_gates_decide_who_scores_promote_or_keep():
    baselines = {"btyd": BTYD, "heuristic": HEURISTIC}
    promoted = registry.decide_champion("xgboost", registry.decide_challenger(GOOD, CHAMPION, baselines), CHAMPION, baselines)
    assert (promoted.action, promoted.model, promoted.baseline_serves) == ("promote", "xgboost", False)
    # The same candidate a hair short of the champion's MAE bar (95 x 0.99 = 94.05): the champion stays.
    short = registry.decide_challenger({**GOOD, "mae": 94.06}, CHAMPION, baselines)
    kept = registry.decide_champion("xgboost", short, CHAMPION, baselines)
    assert (short.passed, kept.action, kept.model, kept.baseline_serves) == (False, "keep", "champion", False)


def test_the_gini_floor_applies_even_without_a_champion():
    weak = {"mae": 50.0, "spearman": 0.30, "normalized_gini": 0.25, "fairness_ratio": 1.0}
    low = {"mae": 60.0, "spearman": 0.10, "normalized_gini": 0.10}
    decision = registry.decide_challenger(weak, None, {"heuristic": low})
    assert decision.failures == ["normalized_gini_floor: normalized Gini 0.2500 is not >= 0.3"]
    assert registry.decide_challenger(weak, None, {"heuristic": low}, registry.GatePolicy(min_normalized_gini=0.2)).passed


def test_bad_gate_input_is_refused():
    with pytest.raises(ValueError, match="baselines must name at least one"):
        registry.decide_challenger(GOOD, None, {})
    with pytest.raises(ValueError, match="candidate metrics must contain 'fairness_ratio'"):
        registry.decide_challenger({k: v for k, v in GOOD.items() if k != "fairness_ratio"}, None, {"btyd": BTYD})
    with pytest.raises(ValueError, match="mae_margin must be in"):
        registry.GatePolicy(mae_margin=1.5)


def test_best_model_ranks_over_the_three_metrics():
    # heuristic: ranks 2+2+2 = 6; btyd: 1+1+1 = 3
    assert registry.best_model({"heuristic": HEURISTIC, "btyd": BTYD}) == "btyd"
    # a: ranks 1+2+2 = 5, b: 2+1+1 = 4 -> b despite the higher MAE
    assert (
        registry.best_model(
            {
                "a": {"mae": 1.0, "spearman": 0.1, "normalized_gini": 0.1},
                "b": {"mae": 2.0, "spearman": 0.2, "normalized_gini": 0.2},
            }
        )
        == "b"
    )
    # equal rank sums (3 + 3): the lower MAE wins
    assert (
        registry.best_model(
            {
                "a": {"mae": 1.0, "spearman": 0.1, "normalized_gini": 0.3},
                "b": {"mae": 2.0, "spearman": 0.2, "normalized_gini": 0.2},
            }
        )
        == "a"
    )


def test_champion_rules_first_model_baseline_wins_and_keep():
    refused = registry.decide_challenger({**GOOD, "fairness_ratio": 0.5}, None, {"btyd": BTYD})
    first = registry.decide_champion("xgboost", refused, None, {"btyd": BTYD, "heuristic": HEURISTIC})
    assert (first.action, first.model, first.baseline_serves) == ("baseline", "btyd", True)
    assert "xgboost was refused (fairness_floor" in first.reason and "no champion yet" in first.reason

    short = registry.decide_champion(
        None, None, None, {"btyd": BTYD}, no_candidate_reason="history too short for supervised training"
    )
    assert short.model == "btyd" and short.reason.startswith("history too short")

    weak_champion = {"mae": 130.0, "spearman": 0.30, "normalized_gini": 0.40}
    replaced = registry.decide_champion("xgboost", refused, weak_champion, {"btyd": BTYD})
    assert (replaced.action, replaced.model) == ("baseline", "btyd") and "beats the champion" in replaced.reason

    kept = registry.decide_champion("xgboost", refused, CHAMPION, {"btyd": BTYD})
    assert (kept.action, kept.model) == ("keep", "champion") and "btyd does not beat it" in kept.reason


def test_a_tie_is_not_a_win():
    policy = registry.GatePolicy(mae_margin=0.0, spearman_margin=0.0, gini_margin=0.0)
    assert not registry.decide_challenger({**BTYD, "fairness_ratio": 1.0}, None, {"btyd": BTYD}, policy).passed
    assert registry.decide_champion(None, None, BTYD, {"btyd": BTYD}, policy=policy).action == "keep"


def test_fairness_without_slices_to_compare_is_not_a_refusal():
    decision = registry.decide_challenger({**GOOD, "fairness_ratio": float("nan")}, CHAMPION, {"btyd": BTYD})
    assert decision.passed and decision.gates["fairness_floor"] == (
        True,
        "fairness ratio undefined: fewer than two slices large enough to compare",
    )
