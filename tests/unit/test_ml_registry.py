"""MLflow logging, registration, aliases and promotion against a real sqlite store in a temporary folder."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clv_platform.ml import registry
from clv_platform.ml.features import FEATURE_COLUMNS, PREDICTION_COLUMN
from clv_platform.ml.synthetic import make_examples
from clv_platform.ml.train import fit_clv_model, predict_clv, time_split

GOOD = {"n_estimators": 150, "learning_rate": 0.1, "early_stopping_rounds": 20}
WEAK = {"n_estimators": 3, "max_depth": 1, "early_stopping_rounds": None}


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
    return time_split(make_examples(n_customers=400, seed=2))


@pytest.fixture(scope="module")
def good(split):
    return fit_clv_model(*split, GOOD)


@pytest.fixture(scope="module")
def weak(split):
    return fit_clv_model(*split, WEAK)


def register(trained, split, model_name, **kwargs):
    train, valid = split
    return registry.log_and_register(
        trained, train, valid, model_name=model_name, data_version="d1", code_version="abc123", **kwargs
    )


def test_log_and_register_round_trips_model_reference_and_lineage(store, split, good):
    import mlflow

    _, valid = split
    info = register(good, split, "clv_roundtrip")
    assert info.version == "1" and info.model_uri == "models:/clv_roundtrip/1"
    assert info.metrics == pytest.approx(good.metrics)

    loaded = registry.load_model_version("clv_roundtrip", info.version)
    # same trees, including the early-stopping cut: predictions match the in-memory model
    np.testing.assert_allclose(predict_clv(loaded, valid), good.valid_predictions, rtol=1e-6)

    reference = registry.load_reference("clv_roundtrip", info.version)
    assert list(reference.columns) == ["customer_id", "cutoff_date", *FEATURE_COLUMNS, PREDICTION_COLUMN]
    np.testing.assert_allclose(reference[PREDICTION_COLUMN], good.valid_predictions)

    run = mlflow.MlflowClient().get_run(info.run_id)
    assert run.data.tags["data_version"] == "d1" and run.data.tags["code_version"] == "abc123"
    assert run.data.tags["registered_model"] == "clv_roundtrip/1"
    assert run.data.metrics["rmse"] == pytest.approx(good.metrics["rmse"])
    assert run.data.params["objective"] == "reg:squarederror" and run.data.params["n_valid"] == str(len(valid))
    version = mlflow.MlflowClient().get_model_version("clv_roundtrip", "1")
    assert version.tags == {"data_version": "d1", "code_version": "abc123"}


def test_artifacts_go_under_the_state_dir_never_to_cwd_mlruns(store, split, good):
    register(good, split, "clv_artifacts")
    artifact_dir = store / "clv" / "mlartifacts" / registry.DEFAULT_EXPERIMENT_NAME
    files = {p.name for p in artifact_dir.rglob("*") if p.is_file()}
    assert {"model.ubj", "MLmodel", "reference.parquet"} <= files
    assert not (Path.cwd() / "mlruns").exists()
    assert Path.cwd() == store / "cwd" and os.listdir(Path.cwd()) == []


def test_an_experiment_on_the_default_mlruns_location_is_refused(store):
    import mlflow

    mlflow.MlflowClient().create_experiment("created_elsewhere")  # no artifact_location: ./mlruns
    with pytest.raises(ValueError, match="created without an artifact_location"):
        registry.ensure_experiment("created_elsewhere")


def test_champion_is_none_without_model_or_alias(store, split, weak):
    assert registry.champion_version("no_such_model") is None
    register(weak, split, "clv_no_alias")
    assert registry.champion_version("clv_no_alias") is None


def test_promotion_accepts_a_better_model_and_refuses_a_worse_one(store, split, good, weak):
    _, valid = split
    name = "clv_promotion"

    first = register(weak, split, name)
    promote, reason = registry.decide_promotion(first.metrics, None)
    assert promote and "no champion" in reason
    registry.set_alias(name, registry.CHAMPION_ALIAS, first.version)
    # the store decides whether ModelVersion.version is an int (sqlite) or a str (REST): compare as str
    assert str(registry.champion_version(name).version) == first.version

    better = register(good, split, name)
    champion, champion_metrics = registry.champion_metrics(name, valid)
    assert str(champion.version) == first.version
    assert champion_metrics["rmse"] == pytest.approx(weak.metrics["rmse"], rel=1e-5)
    promote, reason = registry.decide_promotion(better.metrics, champion_metrics)
    assert promote, reason
    registry.set_alias(name, registry.CHAMPION_ALIAS, better.version)
    assert str(registry.champion_version(name).version) == better.version == "2"

    worse = register(weak, split, name)
    champion, champion_metrics = registry.champion_metrics(name, valid)
    promote, reason = registry.decide_promotion(worse.metrics, champion_metrics)
    assert not promote and "champion stays" in reason
    assert str(registry.champion_version(name).version) == "2"
    assert sorted(str(v.version) for v in _versions(name)) == ["1", "2", "3"]


def _versions(name):
    import mlflow

    return mlflow.MlflowClient().search_model_versions(f"name='{name}'")


def test_log_and_register_rejects_a_bad_reference(store, split, good):
    train, valid = split
    with pytest.raises(ValueError, match="reference is missing required column.*predicted_clv"):
        registry.log_and_register(
            good, train, valid, data_version="d", code_version="c", reference=valid[list(FEATURE_COLUMNS)]
        )
    with pytest.raises(ValueError, match="data_version and code_version"):
        registry.log_and_register(good, train, valid, data_version="", code_version="c")


def test_decide_promotion_rule():
    assert registry.decide_promotion({"rmse": 9.0}, {"rmse": 10.0})[0]
    assert not registry.decide_promotion({"rmse": 10.0}, {"rmse": 10.0})[0]  # a tie keeps the champion
    assert not registry.decide_promotion({"rmse": 9.9}, {"rmse": 10.0}, min_improvement=0.05)[0]
    assert registry.decide_promotion({"rmse": 9.4}, {"rmse": 10.0}, min_improvement=0.05)[0]
    with pytest.raises(ValueError, match="must contain 'rmse'"):
        registry.decide_promotion({"mae": 1.0}, None)
    with pytest.raises(ValueError, match="min_improvement"):
        registry.decide_promotion({"rmse": 1.0}, None, min_improvement=1.5)
    with pytest.raises(ValueError, match="finite"):
        registry.decide_promotion({"rmse": 1.0}, {"rmse": float("nan")})


def test_build_reference_needs_the_validation_frame(split, good):
    train, _ = split
    with pytest.raises(ValueError, match="validation predictions"):
        registry.build_reference(good, train)
    assert isinstance(registry.build_reference(good, split[1]), pd.DataFrame)
