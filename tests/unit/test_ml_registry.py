"""MLflow logging of any CLV model as a pyfunc, aliases and the gates on logged models, against a real sqlite store.

The models here are two small real estimators of tests/unit/fixture_estimators.py (the ladder's own are
tested in tests/component/test_ml_baselines.py and test_ml_ladder.py, and test_ml_train.py).
"""

import os
from pathlib import Path

import numpy as np
import pytest
from fixture_estimators import ConstantModel, SpendRateModel

from clv_platform.ml import gates, registry
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
    policy = gates.GatePolicy(mae_margin=0.0, spearman_margin=0.0, gini_margin=0.0, min_normalized_gini=0.0)
    baselines = {"constant": evaluation_metrics(models["constant"], valid)}

    # First run: no champion; the spend-rate model beats the constant baseline, so it is promoted.
    constant = log(models["constant"], valid, name)
    rate = log(models["spend_rate"], valid, name)
    gate_verdict = gates.decide_challenger(rate.metrics, None, baselines, policy)
    assert gate_verdict.passed, gate_verdict.failures
    champion_decision = gates.decide_champion("spend_rate", gate_verdict, None, baselines, policy=policy)
    assert champion_decision.action == "promote" and not champion_decision.baseline_serves
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
        "mean_prediction": float(champion_pred.mean()),
    }
    worse = log(models["constant"], valid, name)
    rate_metrics = evaluation_metrics(models["spend_rate"], valid)
    constant_metrics = {
        **evaluation_metrics(models["constant"], valid),
        "mean_prediction": float(models["constant"].predict(valid).mean()),
    }
    gate_verdict = gates.decide_challenger(constant_metrics, champion_metrics, {"spend_rate": rate_metrics}, policy)
    assert not gate_verdict.passed
    assert any(
        f.startswith("beats_champion: ") and "normalized Gini 0.0000 is not > champion's" in f for f in gate_verdict.failures
    )
    champion_decision = gates.decide_champion(
        "constant", gate_verdict, champion_metrics, {"spend_rate": rate_metrics}, champion_is_baseline=False, policy=policy
    )
    assert champion_decision.action == "keep" and "champion stays" in champion_decision.reason
    assert str(registry.champion_version(name).version) == "2"
    assert str(registry.get_alias_version(name, registry.CHALLENGER_ALIAS).version) == "2"
    assert sorted(str(v.version) for v in _versions(name)) == [constant.version, "2", worse.version]

    registry.delete_alias(name, registry.CHALLENGER_ALIAS)
    assert registry.get_alias_version(name, registry.CHALLENGER_ALIAS) is None
    assert registry.champion_version("no_such_model") is None


def _versions(name):
    import mlflow

    return mlflow.MlflowClient().search_model_versions(f"name='{name}'")


def test_an_inherited_registry_uri_of_another_store_is_not_followed(store, split, models, tmp_path, monkeypatch):
    """MLflow writes MLFLOW_REGISTRY_URI into the environment of a process that set a registry, and children inherit
    it: a process on this state must still load this store's versions, not the other store's of the same number."""
    _, valid = split
    name = "clv_inherited_registry"
    mine = log(models["spend_rate"], valid, name)
    other = f"sqlite:///{tmp_path / 'other.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", other)
        log(models["constant"], valid, name)  # version 1 of the same name in the other store
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", other)
    registry.set_alias(name, registry.CHAMPION_ALIAS, mine.version)
    loaded = registry.load_model_version(name, mine.version)
    assert registry.estimator_of(loaded).name == models["spend_rate"].name
    assert str(registry.champion_version(name).version) == mine.version
