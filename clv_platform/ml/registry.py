"""MLflow tracking and registry for the CLV model: log, register, alias, load, and the promotion rule.

Conventions
-----------
- The tracking store is :func:`clv_platform.settings.mlflow_tracking_uri` (``$MLFLOW_TRACKING_URI`` or a
  sqlite file in the state directory). Experiments created here get an explicit ``artifact_location``
  under :func:`clv_platform.settings.mlflow_artifact_root`, so nothing is written to ``./mlruns``.
- Every training run registers a new version of ``clv_xgboost``. Which version serves is said only by
  the ``champion`` alias (registry stages are deprecated in MLflow 3).
- Each run carries a drift reference, ``reference/reference.parquet``: the features of the validation
  cutoff with this model's ``predicted_clv``. :func:`load_reference` returns it for any version.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from clv_platform import settings
from clv_platform.ml.features import (
    CUTOFF_COLUMN,
    ID_COLUMN,
    LABEL_COLUMN,
    PREDICTION_COLUMN,
    require_columns,
    require_numeric_finite,
)
from clv_platform.ml.metrics import regression_metrics
from clv_platform.ml.train import TrainedModel, model_feature_columns, predict_clv

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

DEFAULT_MODEL_NAME = "clv_xgboost"
DEFAULT_EXPERIMENT_NAME = "clv_platform"
CHAMPION_ALIAS = "champion"
MODEL_ARTIFACT_NAME = "model"
REFERENCE_ARTIFACT_DIR = "reference"
REFERENCE_FILE_NAME = "reference.parquet"
INPUT_EXAMPLE_ROWS = 5
# Pinned instead of inferred: MLflow's requirement inference loads the model in a subprocess (about 14 s).
_MODEL_REQUIREMENTS = ("xgboost", "scikit-learn", "numpy", "pandas", "scipy")


@dataclass(frozen=True)
class RegisteredVersion:
    """What :func:`log_and_register` created.

    Attributes
    ----------
    model_name, version
        The registered model and its new version (a string, as MLflow returns it).
    model_uri
        ``models:/<name>/<version>``, loadable with :func:`load_model_version`.
    run_id, experiment_id
        The MLflow run holding params, metrics, tags and the reference artifact.
    logged_model_id
        MLflow 3's LoggedModel id (``m-...``).
    metrics
        The validation metrics that were logged.
    """

    model_name: str
    version: str
    model_uri: str
    run_id: str
    experiment_id: str
    logged_model_id: str | None
    metrics: dict[str, float]


def _mlflow():
    """Import mlflow pointed at the platform's tracking store, telemetry off."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    uri = settings.mlflow_tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    return mlflow


def _client():
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=_mlflow().get_tracking_uri())


def ensure_experiment(experiment_name: str = DEFAULT_EXPERIMENT_NAME) -> str:
    """Return the id of ``experiment_name``, creating it with an explicit artifact location if missing.

    A new experiment keeps its artifacts in ``settings.mlflow_artifact_root() / experiment_name`` (the
    directory is created). An existing experiment keeps the location it was created with; a deleted one
    is restored.
    """
    if not experiment_name or "/" in experiment_name or "\\" in experiment_name:
        raise ValueError(f"experiment_name must be a non-empty name without slashes, got {experiment_name!r}")
    client = _client()
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is not None:
        if _is_default_mlruns(experiment.artifact_location, experiment.experiment_id):
            raise ValueError(
                f"experiment '{experiment_name}' keeps its artifacts in MLflow's default "
                f"{experiment.artifact_location} (it was created without an artifact_location); rename or "
                "delete it, or pass another experiment_name, so artifacts go under the state directory"
            )
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    location = settings.mlflow_artifact_root() / experiment_name
    location.mkdir(parents=True, exist_ok=True)
    return client.create_experiment(experiment_name, artifact_location=location.resolve().as_uri())


def _is_default_mlruns(location: str | None, experiment_id: str) -> bool:
    """Whether ``location`` is MLflow's default ``<cwd at creation>/mlruns/<experiment_id>``."""
    if not location:
        return True
    path = location.removeprefix("file://")
    if "://" in path:
        return False
    parts = Path(path).parts
    return len(parts) >= 2 and parts[-2] == "mlruns" and parts[-1] == str(experiment_id)


def build_reference(trained: TrainedModel, valid: pd.DataFrame) -> pd.DataFrame:
    """The drift reference: ``valid``'s ids, cutoff and features with this model's ``predicted_clv``.

    ``trained.valid_predictions`` must be row-aligned with ``valid`` (as :func:`fit_clv_model` returns it).
    """
    require_columns(valid, [ID_COLUMN, CUTOFF_COLUMN, *trained.feature_columns], frame_name="valid")
    if len(valid) != len(trained.valid_predictions):
        raise ValueError(
            f"valid has {len(valid)} rows but the model has {len(trained.valid_predictions)} validation "
            "predictions: pass the frame the model was validated on"
        )
    reference = valid.loc[:, [ID_COLUMN, CUTOFF_COLUMN, *trained.feature_columns]].reset_index(drop=True)
    reference[PREDICTION_COLUMN] = trained.valid_predictions
    return reference


def _validate_reference(reference: pd.DataFrame, feature_columns) -> None:
    require_columns(reference, [*feature_columns, PREDICTION_COLUMN], frame_name="reference")
    require_numeric_finite(reference, [*feature_columns, PREDICTION_COLUMN], frame_name="reference")
    if len(reference) == 0:
        raise ValueError("reference must not be empty")


def log_and_register(
    trained: TrainedModel,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    *,
    model_name: str = DEFAULT_MODEL_NAME,
    experiment_name: str = DEFAULT_EXPERIMENT_NAME,
    data_version: str,
    code_version: str,
    reference: pd.DataFrame | None = None,
    run_name: str | None = None,
) -> RegisteredVersion:
    """Log a trained model to MLflow and register it as a new version of ``model_name``.

    In one run of ``experiment_name`` (created by :func:`ensure_experiment` if missing) this logs the
    hyper-parameters and split sizes, the validation metrics (``rmse``, ``mae``, ``normalized_gini``),
    the tags ``data_version`` and ``code_version`` (also set on the model version), the model with its
    signature and an input example, and the drift reference ``reference/reference.parquet``. No alias is
    moved: promotion is :func:`decide_promotion` then :func:`set_alias`.

    Parameters
    ----------
    trained
        From :func:`clv_platform.ml.train.fit_clv_model`.
    train, valid
        The frames it was fitted and validated on.
    data_version, code_version
        Lineage tags, e.g. the marts' data version and the git commit.
    reference
        The drift reference to store; by default :func:`build_reference` of ``trained`` on ``valid``.
        Must hold the model's features and ``predicted_clv``.

    Returns
    -------
    RegisteredVersion
    """
    if not data_version or not code_version:
        raise ValueError("data_version and code_version must be non-empty strings")
    feature_columns = list(trained.feature_columns)
    require_columns(train, feature_columns, frame_name="train")
    require_columns(valid, [*feature_columns, LABEL_COLUMN], frame_name="valid")
    if reference is None:
        reference = build_reference(trained, valid)
    _validate_reference(reference, feature_columns)
    metrics = {key: float(trained.metrics[key]) for key in ("rmse", "mae", "normalized_gini")}

    mlflow = _mlflow()
    from mlflow.models import infer_signature
    from mlflow.xgboost import log_model

    experiment_id = ensure_experiment(experiment_name)
    x_valid = valid.loc[:, feature_columns].astype("float64")
    signature = infer_signature(x_valid, trained.valid_predictions)
    requirements = [f"{package}=={metadata.version(package)}" for package in _MODEL_REQUIREMENTS]
    tags = {"data_version": data_version, "code_version": code_version}

    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        mlflow.set_tags(tags)
        mlflow.log_params(
            {
                **trained.params.as_dict(),
                "feature_columns": ",".join(feature_columns),
                "n_train": len(train),
                "n_valid": len(valid),
                "train_cutoffs": ",".join(str(pd.Timestamp(c).date()) for c in trained.train_cutoffs),
                "valid_cutoff": None if trained.valid_cutoff is None else str(trained.valid_cutoff.date()),
                "best_iteration": trained.best_iteration,
            }
        )
        info = log_model(
            trained.model,
            name=MODEL_ARTIFACT_NAME,
            signature=signature,
            input_example=x_valid.head(INPUT_EXAMPLE_ROWS),
            registered_model_name=model_name,
            pip_requirements=requirements,
        )
        mlflow.log_metrics({k: v for k, v in metrics.items() if math.isfinite(v)}, model_id=info.model_id)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / REFERENCE_FILE_NAME
            reference.to_parquet(path, index=False)
            mlflow.log_artifact(str(path), artifact_path=REFERENCE_ARTIFACT_DIR)

    version = str(info.registered_model_version)
    client = _client()
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    client.set_tag(run.info.run_id, "registered_model", f"{model_name}/{version}")
    return RegisteredVersion(
        model_name=model_name,
        version=version,
        model_uri=f"models:/{model_name}/{version}",
        run_id=run.info.run_id,
        experiment_id=experiment_id,
        logged_model_id=info.model_id,
        metrics=metrics,
    )


def _is_missing(error: Exception) -> bool:
    return getattr(error, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"


def get_alias_version(model_name: str, alias: str) -> ModelVersion | None:
    """The version ``alias`` points to, or ``None`` if the model or the alias does not exist.

    ``ModelVersion.version`` is an ``int`` from a sqlite/SQLAlchemy store and a ``str`` over REST: use
    ``str(version.version)`` when recording or comparing it.
    """
    from mlflow.exceptions import MlflowException

    client = _client()
    try:
        registered = client.get_registered_model(model_name)
    except MlflowException as error:
        if _is_missing(error):
            return None
        raise
    version = registered.aliases.get(alias)
    if version is None:
        return None
    return client.get_model_version(model_name, str(version))


def champion_version(model_name: str = DEFAULT_MODEL_NAME) -> ModelVersion | None:
    """The version the ``champion`` alias points to, or ``None`` before the first promotion."""
    return get_alias_version(model_name, CHAMPION_ALIAS)


def set_alias(model_name: str, alias: str, version: str | int) -> None:
    """Point ``alias`` of ``model_name`` at ``version`` (moving it from any other version)."""
    if not alias:
        raise ValueError("alias must be a non-empty string")
    _client().set_registered_model_alias(model_name, alias, str(version))


def load_model_version(model_name: str, version: str | int) -> Any:
    """The ``xgboost.XGBRegressor`` stored as ``models:/<model_name>/<version>``."""
    _mlflow()
    from mlflow.xgboost import load_model

    return load_model(f"models:/{model_name}/{version}")


def load_reference(model_name: str, version: str | int) -> pd.DataFrame:
    """The drift reference logged with ``version``'s run (features and ``predicted_clv``)."""
    mlflow = _mlflow()
    model_version = _client().get_model_version(model_name, str(version))
    if not model_version.run_id:
        raise ValueError(f"model {model_name} version {version} has no run, so no reference artifact")
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(
            run_id=model_version.run_id,
            artifact_path=f"{REFERENCE_ARTIFACT_DIR}/{REFERENCE_FILE_NAME}",
            dst_path=tmp,
        )
        return pd.read_parquet(path)


def evaluate_version(model_name: str, version: str | int, valid: pd.DataFrame) -> dict[str, float]:
    """Load ``version`` and compute its ``rmse``, ``mae``, ``normalized_gini`` on ``valid``.

    The model is fed the feature columns it was trained with, so a champion trained on an older feature
    list is still evaluated on its own inputs (``valid`` must contain them).
    """
    require_columns(valid, [LABEL_COLUMN], frame_name="valid")
    model = load_model_version(model_name, version)
    predictions = predict_clv(model, valid, model_feature_columns(model))
    return regression_metrics(valid[LABEL_COLUMN].to_numpy(dtype="float64"), predictions)


def champion_metrics(model_name: str, valid: pd.DataFrame) -> tuple[ModelVersion, dict[str, float]] | None:
    """The current champion and its metrics on ``valid`` (the new model's validation set), or ``None``."""
    champion = champion_version(model_name)
    if champion is None:
        return None
    return champion, evaluate_version(model_name, champion.version, valid)


def decide_promotion(
    new_metrics: Mapping[str, float],
    champion_metrics_on_same_valid: Mapping[str, float] | None,
    min_improvement: float = 0.0,
) -> tuple[bool, str]:
    """Whether a new version should become champion, and why.

    Rule: with no champion, the new version is promoted. Otherwise it is promoted only if its RMSE on its
    own validation set is lower than the champion's RMSE on that same set by more than ``min_improvement``,
    a fraction of the champion's RMSE (``0.0``: any decrease; ``0.02``: at least 2 % lower). A tie keeps
    the champion.

    Parameters
    ----------
    new_metrics
        The new version's validation metrics; needs ``rmse``.
    champion_metrics_on_same_valid
        The champion's metrics on the same validation frame (:func:`champion_metrics`), or ``None``.
    min_improvement
        Required relative RMSE decrease, in ``[0, 1)``.

    Examples
    --------
    >>> decide_promotion({"rmse": 9.0}, {"rmse": 10.0})
    (True, 'new RMSE 9.0000 < champion RMSE 10.0000 x (1 - 0.0) on the same validation set')
    >>> decide_promotion({"rmse": 9.9}, {"rmse": 10.0}, min_improvement=0.05)[0]
    False
    """
    if not 0.0 <= min_improvement < 1.0:
        raise ValueError(f"min_improvement must be in [0, 1), got {min_improvement}")
    new_rmse = _rmse_of(new_metrics, "new_metrics")
    if champion_metrics_on_same_valid is None:
        return True, f"no champion yet: the first model (RMSE {new_rmse:.4f}) becomes champion"
    champion_rmse = _rmse_of(champion_metrics_on_same_valid, "champion_metrics_on_same_valid")
    bar = champion_rmse * (1.0 - min_improvement)
    comparison = f"champion RMSE {champion_rmse:.4f} x (1 - {min_improvement}) on the same validation set"
    if new_rmse < bar:
        return True, f"new RMSE {new_rmse:.4f} < {comparison}"
    return False, f"new RMSE {new_rmse:.4f} >= {comparison}: the champion stays"


def _rmse_of(metrics: Mapping[str, float], name: str) -> float:
    if "rmse" not in metrics:
        raise ValueError(f"{name} must contain 'rmse', got keys {sorted(metrics)}")
    value = float(metrics["rmse"])
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}['rmse'] must be a finite number >= 0, got {value}")
    return value


__all__ = [
    "CHAMPION_ALIAS",
    "DEFAULT_EXPERIMENT_NAME",
    "DEFAULT_MODEL_NAME",
    "RegisteredVersion",
    "build_reference",
    "champion_metrics",
    "champion_version",
    "decide_promotion",
    "ensure_experiment",
    "evaluate_version",
    "get_alias_version",
    "load_model_version",
    "load_reference",
    "log_and_register",
    "set_alias",
]
