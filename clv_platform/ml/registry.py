"""MLflow tracking and registry for CLV models: log any model as a pyfunc, register, alias, load.

Conventions
-----------
- The tracking store is :func:`clv_platform.settings.mlflow_tracking_uri` (``$MLFLOW_TRACKING_URI`` or a
  sqlite file in the state directory). Experiments created here get an explicit ``artifact_location``
  under :func:`clv_platform.settings.mlflow_artifact_root`, so nothing is written to ``./mlruns``.
- Every rung of the ladder (heuristic, linear, BG/NBD + Gamma-Gamma, XGBoost) is logged the same way, as
  a version of one registered model (``clv_model``) with the tag ``rung``, through
  :class:`~clv_platform.ml.pyfunc.CLVPyfuncModel`: same input signature (all of ``FEATURE_COLUMNS`` as
  float64), same output (``predicted_clv``, ``probability_alive``). So the champion can be any of them.
- Which version serves is said only by aliases (registry stages are deprecated in MLflow 3):
  ``challenger`` names a new model that passed the gates, ``champion`` the one that scores. Which is which
  is decided by the pure policy of :mod:`clv_platform.ml.gates`; this module only moves the aliases.
- Each run carries a drift reference, ``reference/reference.parquet``: the features of the evaluation
  cutoff with this model's ``predicted_clv``; a ``model_card.md`` (also the version's description); and
  its plots under ``plots/``.
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

import numpy as np
import pandas as pd

from clv_platform import settings
from clv_platform.ml.estimator import CLVEstimator
from clv_platform.ml.features import (
    CUTOFF_COLUMN,
    FEATURE_COLUMNS,
    ID_COLUMN,
    PREDICTION_COLUMN,
    require_columns,
    require_numeric_finite,
)

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

DEFAULT_MODEL_NAME = "clv_model"
DEFAULT_EXPERIMENT_NAME = "clv_platform"
CHAMPION_ALIAS = "champion"
CHALLENGER_ALIAS = "challenger"
MODEL_ARTIFACT_NAME = "model"
REFERENCE_ARTIFACT_DIR = "reference"
REFERENCE_FILE_NAME = "reference.parquet"
MODEL_CARD_FILE_NAME = "model_card.md"
PLOTS_ARTIFACT_DIR = "plots"
INPUT_EXAMPLE_ROWS = 5
OUTPUT_COLUMNS = ("predicted_clv", "probability_alive")
# Pinned instead of inferred: MLflow's requirement inference loads each model in a subprocess, seconds per version.
# Every rung's needs, so any version can be served from the same environment.
_MODEL_REQUIREMENTS = ("cloudpickle", "numpy", "pandas", "scipy", "scikit-learn", "xgboost", "pymc-marketing")


@dataclass(frozen=True)
class RegisteredVersion:
    """What :func:`log_estimator` created.

    Attributes
    ----------
    model_name, version
        The registered model and its new version (a string, as MLflow returns it).
    rung
        The estimator's name (``heuristic``, ``linear``, ``btyd``, ``xgboost`` ...).
    model_uri
        ``models:/<name>/<version>``, loadable with :func:`load_model_version`.
    run_id, experiment_id
        The MLflow run holding params, metrics, tags, the card and the reference artifact.
    logged_model_id
        MLflow 3's LoggedModel id (``m-...``).
    metrics
        The evaluation metrics that were logged.
    """

    model_name: str
    version: str
    rung: str
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
    # The registry lives in the tracking store (as MlflowResource sets it). Set explicitly: mlflow.set_registry_uri
    # writes MLFLOW_REGISTRY_URI into the environment, so a process started by one that used another store
    # would otherwise resolve `models:/` URIs in that other store's registry.
    mlflow.set_registry_uri(uri)
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


def model_input(features: pd.DataFrame) -> pd.DataFrame:
    """The pyfunc's input: every column of ``FEATURE_COLUMNS``, in order, as float64.

    Counts arrive as integers from the warehouse; the logged signature says double, and MLflow's schema
    enforcement refuses an int column where a double was logged.
    """
    require_columns(features, FEATURE_COLUMNS, frame_name="features")
    require_numeric_finite(features, FEATURE_COLUMNS, frame_name="features")
    return features.loc[:, list(FEATURE_COLUMNS)].astype("float64")


def signature():
    """The one signature of every CLV model: ``FEATURE_COLUMNS`` float64 in, ``predicted_clv``, ``probability_alive`` out."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("double", column) for column in FEATURE_COLUMNS]),
        outputs=Schema([ColSpec("double", column, required=column == "predicted_clv") for column in OUTPUT_COLUMNS]),
    )


def build_reference(features: pd.DataFrame, predictions: np.ndarray) -> pd.DataFrame:
    """The drift reference: ``features``' ids, cutoff and ``FEATURE_COLUMNS`` with the model's ``predicted_clv``."""
    require_columns(features, [ID_COLUMN, CUTOFF_COLUMN, *FEATURE_COLUMNS], frame_name="reference features")
    predictions = np.asarray(predictions, dtype="float64")
    if len(features) != len(predictions):
        raise ValueError(
            f"reference features have {len(features)} rows but there are {len(predictions)} predictions: "
            "pass the predictions made on these rows"
        )
    reference = features.loc[:, [ID_COLUMN, CUTOFF_COLUMN, *FEATURE_COLUMNS]].reset_index(drop=True)
    reference[PREDICTION_COLUMN] = predictions
    return reference


def _validate_reference(reference: pd.DataFrame) -> None:
    require_columns(reference, [*FEATURE_COLUMNS, PREDICTION_COLUMN], frame_name="reference")
    require_numeric_finite(reference, [*FEATURE_COLUMNS, PREDICTION_COLUMN], frame_name="reference")
    if len(reference) == 0:
        raise ValueError("reference must not be empty")


def log_estimator(
    estimator: CLVEstimator,
    *,
    reference: pd.DataFrame,
    data_version: str,
    code_version: str,
    metrics: Mapping[str, float] | None = None,
    params: Mapping[str, Any] | None = None,
    model_card: str | None = None,
    plots: Mapping[str, bytes] | None = None,
    tags: Mapping[str, str] | None = None,
    model_name: str = DEFAULT_MODEL_NAME,
    experiment_name: str = DEFAULT_EXPERIMENT_NAME,
    run_name: str | None = None,
) -> RegisteredVersion:
    """Log a fitted :class:`CLVEstimator` as an MLflow pyfunc and register it as a new version of ``model_name``.

    In one run of ``experiment_name`` (created by :func:`ensure_experiment` if missing) this logs the
    estimator's :meth:`~CLVEstimator.params` and ``params``, the finite ``metrics``, the tags ``rung``,
    ``data_version``, ``code_version`` and ``tags`` (also set on the model version), the model through
    :class:`~clv_platform.ml.pyfunc.CLVPyfuncModel` with :func:`signature` and an input example (the first
    rows of the reference), the drift reference ``reference/reference.parquet``, ``model_card`` as
    ``model_card.md`` and as the version's description, and each of ``plots`` (name -> PNG bytes) under
    ``plots/``. No alias is moved: that is :mod:`clv_platform.ml.gates`' decisions, then :func:`set_alias`.

    Parameters
    ----------
    estimator
        A fitted estimator (``horizon_days`` set).
    reference
        The drift reference (:func:`build_reference`): ``FEATURE_COLUMNS`` and ``predicted_clv``.
    data_version, code_version
        Lineage: e.g. the hash of the input partitions and the code hash with the git commit.

    Returns
    -------
    RegisteredVersion
    """
    if not data_version or not code_version:
        raise ValueError("data_version and code_version must be non-empty strings")
    if estimator.horizon_days is None:
        raise ValueError(f"the {estimator.name} model must be fitted before it is logged")
    _validate_reference(reference)
    finite = {key: float(value) for key, value in (metrics or {}).items() if value is not None and math.isfinite(float(value))}
    version_tags = {"rung": estimator.name, "data_version": data_version, "code_version": code_version, **(tags or {})}

    mlflow = _mlflow()
    from mlflow.pyfunc import log_model

    from clv_platform.ml.pyfunc import CLVPyfuncModel

    experiment_id = ensure_experiment(experiment_name)
    requirements = [f"{package}=={metadata.version(package)}" for package in _MODEL_REQUIREMENTS]
    logged_params = {"rung": estimator.name, "horizon_days": estimator.horizon_days, **estimator.params(), **(params or {})}
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name or estimator.name) as run:
        mlflow.set_tags(version_tags)
        # MLflow caps a param value at 6000 characters; a long list (cutoffs) is shortened, not refused.
        mlflow.log_params({key: str(value)[:6000] for key, value in logged_params.items()})
        info = log_model(
            name=MODEL_ARTIFACT_NAME,
            python_model=CLVPyfuncModel(estimator),
            signature=signature(),
            input_example=model_input(reference.head(INPUT_EXAMPLE_ROWS)),
            registered_model_name=model_name,
            pip_requirements=requirements,
        )
        if finite:
            mlflow.log_metrics(finite, model_id=info.model_id)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / REFERENCE_FILE_NAME
            reference.to_parquet(path, index=False)
            mlflow.log_artifact(str(path), artifact_path=REFERENCE_ARTIFACT_DIR)
            for name, png in (plots or {}).items():
                plot_path = Path(tmp) / f"{name}.png"
                plot_path.write_bytes(png)
                mlflow.log_artifact(str(plot_path), artifact_path=PLOTS_ARTIFACT_DIR)
        if model_card:
            mlflow.log_text(model_card, MODEL_CARD_FILE_NAME)

    version = str(info.registered_model_version)
    client = _client()
    for key, value in version_tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    if model_card:
        client.update_model_version(model_name, version, description=model_card)
    client.set_tag(run.info.run_id, "registered_model", f"{model_name}/{version}")
    return RegisteredVersion(
        model_name=model_name,
        version=version,
        rung=estimator.name,
        model_uri=f"models:/{model_name}/{version}",
        run_id=run.info.run_id,
        experiment_id=experiment_id,
        logged_model_id=info.model_id,
        metrics=finite,
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


def version_rungs(model_name: str = DEFAULT_MODEL_NAME) -> dict[str, str]:
    """Every registered version of ``model_name`` (as a string) -> its ``rung`` tag; empty if the model does not exist."""
    versions = _client().search_model_versions(f"name = '{model_name}'")
    return {str(v.version): v.tags.get("rung", "") for v in versions}


def set_alias(model_name: str, alias: str, version: str | int) -> None:
    """Point ``alias`` of ``model_name`` at ``version`` (moving it from any other version)."""
    if not alias:
        raise ValueError("alias must be a non-empty string")
    _client().set_registered_model_alias(model_name, alias, str(version))


def delete_alias(model_name: str, alias: str) -> None:
    """Remove ``alias`` from ``model_name`` if it is set."""
    if get_alias_version(model_name, alias) is not None:
        _client().delete_registered_model_alias(model_name, alias)


def get_rollout(model_name: str = DEFAULT_MODEL_NAME):
    """The rollout the registered model's tags say (:class:`~clv_platform.ml.rollout.Rollout`); mode ``none`` when unset."""
    return serving_state(model_name)[2]


def set_rollout(model_name: str, rollout) -> None:
    """Store ``rollout`` as tags of the registered model, where the batch job and every API process read it."""
    client = _client()
    for key, value in rollout.to_tags().items():
        client.set_registered_model_tag(model_name, key, value)


def serving_state(model_name: str = DEFAULT_MODEL_NAME) -> tuple[str | None, str | None, Any]:
    """The champion's version, the challenger's when it is set and distinct from the champion, and the rollout: one call.

    A challenger equal to the champion is ``None``: there is nothing to split or compare.
    """
    from mlflow.exceptions import MlflowException

    from clv_platform.ml.rollout import Rollout

    try:
        registered = _client().get_registered_model(model_name)
    except MlflowException as error:
        if _is_missing(error):
            return None, None, Rollout()
        raise
    champion = registered.aliases.get(CHAMPION_ALIAS)
    challenger = registered.aliases.get(CHALLENGER_ALIAS)
    champion = None if champion is None else str(champion)
    challenger = None if challenger is None or str(challenger) == champion else str(challenger)
    return champion, challenger, Rollout.from_tags(registered.tags or {})


def load_model_version(model_name: str, version: str | int):
    """The pyfunc stored as ``models:/<model_name>/<version>`` (any rung)."""
    return _mlflow().pyfunc.load_model(f"models:/{model_name}/{version}")


def load_alias(model_name: str, alias: str = CHAMPION_ALIAS):
    """The pyfunc ``models:/<model_name>@<alias>`` names."""
    return _mlflow().pyfunc.load_model(f"models:/{model_name}@{alias}")


def estimator_of(model) -> CLVEstimator:
    """The fitted :class:`CLVEstimator` inside a loaded pyfunc (for contributions and plots)."""
    return model.unwrap_python_model().estimator


def predict(model, features: pd.DataFrame) -> pd.DataFrame:
    """A loaded pyfunc's ``predicted_clv`` and ``probability_alive`` for each row of ``features``."""
    output = model.predict(model_input(features))
    return pd.DataFrame(output, columns=list(OUTPUT_COLUMNS)).set_axis(features.index)


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


__all__ = [
    "CHALLENGER_ALIAS",
    "CHAMPION_ALIAS",
    "DEFAULT_EXPERIMENT_NAME",
    "DEFAULT_MODEL_NAME",
    "RegisteredVersion",
    "build_reference",
    "champion_version",
    "delete_alias",
    "ensure_experiment",
    "estimator_of",
    "get_alias_version",
    "get_rollout",
    "load_alias",
    "load_model_version",
    "load_reference",
    "log_estimator",
    "model_input",
    "predict",
    "serving_state",
    "set_alias",
    "set_rollout",
    "signature",
    "version_rungs",
]
