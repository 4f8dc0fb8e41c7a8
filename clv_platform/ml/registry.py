"""MLflow tracking and registry for CLV models: log any model as a pyfunc, register, alias, load, and the gates.

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
  ``challenger`` names a new model that passed the gates (:func:`decide_challenger`), ``champion`` the one
  that scores (:func:`decide_champion`).
- Each run carries a drift reference, ``reference/reference.parquet``: the features of the evaluation
  cutoff with this model's ``predicted_clv``; a ``model_card.md`` (also the version's description); and
  its plots under ``plots/``.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
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
# Pinned instead of inferred: MLflow's requirement inference loads the model in a subprocess (about 14 s).
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
    ``plots/``. No alias is moved: that is :func:`decide_challenger`, :func:`decide_champion` then
    :func:`set_alias`.

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


def set_alias(model_name: str, alias: str, version: str | int) -> None:
    """Point ``alias`` of ``model_name`` at ``version`` (moving it from any other version)."""
    if not alias:
        raise ValueError("alias must be a non-empty string")
    _client().set_registered_model_alias(model_name, alias, str(version))


def delete_alias(model_name: str, alias: str) -> None:
    """Remove ``alias`` from ``model_name`` if it is set."""
    if get_alias_version(model_name, alias) is not None:
        _client().delete_registered_model_alias(model_name, alias)


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


# The gates --------------------------------------------------------------------------------------

# How each gate metric is compared: lower MAE is better; higher Spearman and normalized Gini are better.
GATE_METRICS: tuple[str, ...] = ("mae", "spearman", "normalized_gini")
FAIRNESS_METRIC = "fairness_ratio"


@dataclass(frozen=True)
class GatePolicy:
    """The margins and floors a new model must clear to become challenger.

    Attributes
    ----------
    mae_margin
        Relative: the candidate's MAE must be below ``(1 - mae_margin)`` times the other model's
        (0.01 = more than 1 % lower).
    spearman_margin, gini_margin
        Absolute: the candidate's Spearman correlation and normalized Gini must exceed the other
        model's plus this (0.01 = more than one point on the 0-1 scale). All comparisons are strict,
        so with zero margins a tie does not count as beating.
    min_normalized_gini
        Floor on the candidate's normalized Gini.
    min_fairness_ratio
        Floor on the candidate's ``fairness_ratio``: its disparate-impact ratio (lowest slice mean
        prediction over the highest, across country and acquisition-channel slices), by default relative
        to the actual revenue's (:func:`clv_platform.ml.metrics.relative_disparate_impact`).
    """

    mae_margin: float = 0.01
    spearman_margin: float = 0.01
    gini_margin: float = 0.01
    min_normalized_gini: float = 0.3
    min_fairness_ratio: float = 0.8

    def __post_init__(self):
        if not 0.0 <= self.mae_margin < 1.0:
            raise ValueError(f"mae_margin must be in [0, 1), got {self.mae_margin}")
        for name in ("spearman_margin", "gini_margin"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not -1.0 <= self.min_normalized_gini <= 1.0:
            raise ValueError(f"min_normalized_gini must be in [-1, 1], got {self.min_normalized_gini}")
        if not 0.0 <= self.min_fairness_ratio <= 1.0:
            raise ValueError(f"min_fairness_ratio must be in [0, 1], got {self.min_fairness_ratio}")


@dataclass(frozen=True)
class GateDecision:
    """Whether a candidate passed, and each gate's verdict in words.

    Attributes
    ----------
    passed
        All gates passed.
    gates
        Gate name -> (passed, why). The gates are ``beats_champion``, ``beats_baselines``,
        ``normalized_gini_floor`` and ``fairness_floor``.
    """

    passed: bool
    gates: dict[str, tuple[bool, str]] = field(default_factory=dict)

    @property
    def reasons(self) -> list[str]:
        """Every gate's verdict, ``"<gate>: passed|FAILED: why"``."""
        return [f"{name}: {'passed' if ok else 'FAILED'}: {why}" for name, (ok, why) in self.gates.items()]

    @property
    def failures(self) -> list[str]:
        return [f"{name}: {why}" for name, (ok, why) in self.gates.items() if not ok]


def _metric(metrics: Mapping[str, float], key: str, owner: str) -> float:
    if key not in metrics:
        raise ValueError(f"{owner} metrics must contain '{key}', got keys {sorted(metrics)}")
    return float(metrics[key])


def _comparison(candidate: Mapping[str, float], other: Mapping[str, float], other_name: str, policy: GatePolicy) -> list[str]:
    """The ways ``candidate`` fails to beat ``other`` by the policy's margins (empty: it beats it).

    A ``nan`` of the candidate fails; a ``nan`` of the other model (the Spearman of a constant
    prediction, say) is no bar, as that model has no value there to beat.
    """
    failures = []
    mae, other_mae = _metric(candidate, "mae", "candidate"), _metric(other, "mae", other_name)
    bar = other_mae * (1.0 - policy.mae_margin)
    if math.isfinite(other_mae) and not mae < bar:  # "not <" also catches a nan
        failures.append(f"MAE {mae:.4f} is not < {other_name}'s {other_mae:.4f} x (1 - {policy.mae_margin})")
    for key, label, margin in (
        ("spearman", "Spearman", policy.spearman_margin),
        ("normalized_gini", "normalized Gini", policy.gini_margin),
    ):
        value, other_value = _metric(candidate, key, "candidate"), _metric(other, key, other_name)
        if math.isfinite(other_value) and not value > other_value + margin:
            failures.append(f"{label} {value:.4f} is not > {other_name}'s {other_value:.4f} + {margin}")
    return failures


def decide_challenger(
    candidate: Mapping[str, float],
    champion: Mapping[str, float] | None,
    baselines: Mapping[str, Mapping[str, float]],
    policy: GatePolicy = GatePolicy(),
) -> GateDecision:
    """Whether a new model earns the ``challenger`` alias, with every gate's reason.

    All metrics are on the same evaluation window. The candidate passes only if:

    - ``beats_champion``: there is no champion, or it beats the champion on every metric of
      :data:`GATE_METRICS` by the margins of ``policy`` (MAE relatively lower, Spearman and normalized
      Gini absolutely higher);
    - ``beats_baselines``: it beats every baseline in the same way;
    - ``normalized_gini_floor``: its normalized Gini is ``>= policy.min_normalized_gini``;
    - ``fairness_floor``: its ``fairness_ratio`` is ``>= policy.min_fairness_ratio``;
      a ``nan`` ratio (fewer than two slices large enough to compare) passes, saying so.

    Any other metric of the candidate that is ``nan`` fails its gate.

    Parameters
    ----------
    candidate
        The new model's ``mae``, ``spearman``, ``normalized_gini`` and ``fairness_ratio``.
    champion
        The current champion's metrics on the same window, or ``None`` if there is none.
    baselines
        Baseline name -> its metrics. Must not be empty: a model is judged against the baselines.

    Examples
    --------
    >>> base = {"btyd": {"mae": 100.0, "spearman": 0.50, "normalized_gini": 0.60}}
    >>> good = {"mae": 90.0, "spearman": 0.55, "normalized_gini": 0.70, "fairness_ratio": 0.9}
    >>> decide_challenger(good, None, base).passed
    True
    >>> decide_challenger({**good, "mae": 99.5}, None, base).failures
    ["beats_baselines: btyd: MAE 99.5000 is not < btyd's 100.0000 x (1 - 0.01)"]
    """
    if not baselines:
        raise ValueError("baselines must name at least one baseline's metrics: a model is judged against them")
    gates: dict[str, tuple[bool, str]] = {}
    if champion is None:
        gates["beats_champion"] = (True, "no champion yet")
    else:
        failures = _comparison(candidate, champion, "champion", policy)
        gates["beats_champion"] = (not failures, "; ".join(failures) or "beats the champion on MAE, Spearman and normalized Gini")
    baseline_failures = [
        f"{name}: {failure}" for name, metrics in baselines.items() for failure in _comparison(candidate, metrics, name, policy)
    ]
    gates["beats_baselines"] = (
        not baseline_failures,
        "; ".join(baseline_failures) or f"beats {', '.join(baselines)} on MAE, Spearman and normalized Gini",
    )
    gini = _metric(candidate, "normalized_gini", "candidate")
    gates["normalized_gini_floor"] = (
        gini >= policy.min_normalized_gini,
        f"normalized Gini {gini:.4f} {'>=' if gini >= policy.min_normalized_gini else 'is not >='} {policy.min_normalized_gini}",
    )
    fairness = _metric(candidate, FAIRNESS_METRIC, "candidate")
    if math.isnan(fairness):
        # Fewer than two slices large enough to compare (a log without country or channel): no disparity to measure.
        gates["fairness_floor"] = (True, "fairness ratio undefined: fewer than two slices large enough to compare")
    else:
        gates["fairness_floor"] = (
            fairness >= policy.min_fairness_ratio,
            f"fairness ratio {fairness:.4f} {'>=' if fairness >= policy.min_fairness_ratio else 'is not >='} {policy.min_fairness_ratio}",
        )
    return GateDecision(passed=all(ok for ok, _ in gates.values()), gates=gates)


def best_model(models: Mapping[str, Mapping[str, float]]) -> str:
    """The model that ranks best over MAE (lowest), Spearman and normalized Gini (highest).

    Each model gets its rank on each metric; the lowest rank sum wins, ties go to the lower MAE. A
    ``nan`` metric ranks last.

    Examples
    --------
    >>> best_model({"a": {"mae": 1.0, "spearman": 0.2, "normalized_gini": 0.2},
    ...             "b": {"mae": 2.0, "spearman": 0.5, "normalized_gini": 0.6}})
    'b'
    """
    if not models:
        raise ValueError("models must not be empty")
    frame = pd.DataFrame({name: {key: _metric(metrics, key, name) for key in GATE_METRICS} for name, metrics in models.items()}).T
    ranks = frame["mae"].rank(na_option="bottom") + sum(
        frame[key].rank(ascending=False, na_option="bottom") for key in ("spearman", "normalized_gini")
    )
    order = pd.DataFrame({"rank": ranks, "mae": frame["mae"].fillna(np.inf)}).sort_values(["rank", "mae"], kind="stable")
    return str(order.index[0])


@dataclass(frozen=True)
class ChampionDecision:
    """Which model scores after this evaluation, and why.

    Attributes
    ----------
    action
        ``promote`` (the candidate passed the gates: challenger, then champion), ``baseline`` (the best
        baseline becomes champion), or ``keep`` (the champion stays).
    model
        The model that will hold the ``champion`` alias: a rung name of this evaluation, or
        ``"champion"`` for the current one.
    reason
        One sentence for people.
    baseline_serves
        Whether the serving model is a baseline rather than a supervised model.
    """

    action: str
    model: str
    reason: str
    baseline_serves: bool


def decide_champion(
    candidate_name: str | None,
    decision: GateDecision | None,
    champion: Mapping[str, float] | None,
    baselines: Mapping[str, Mapping[str, float]],
    *,
    champion_is_baseline: bool = False,
    policy: GatePolicy = GatePolicy(),
    no_candidate_reason: str = "no supervised candidate",
) -> ChampionDecision:
    """Who scores next: the candidate if it passed the gates, else the best baseline when it wins.

    Rules, in order:

    1. The candidate passed :func:`decide_challenger`: it is promoted (challenger, then champion).
    2. There is no champion yet (the first-model rule): the best baseline (:func:`best_model`) becomes
       champion, so the platform always scores.
    3. The best baseline beats the current champion by the policy's margins on MAE, Spearman and
       normalized Gini: it replaces the champion.
    4. Otherwise the champion stays.

    Parameters
    ----------
    candidate_name, decision
        The supervised candidate and its gate decision, or ``None`` for both when none was fitted
        (``no_candidate_reason`` says why, e.g. the history is too short for supervised training).
    champion
        The current champion's metrics on this evaluation window, or ``None``.
    baselines
        Baseline name -> metrics on the same window.
    champion_is_baseline
        Whether the current champion is a baseline rung (reported in :attr:`ChampionDecision.baseline_serves`).
    """
    if (candidate_name is None) != (decision is None):
        raise ValueError("candidate_name and decision must both be given or both be None")
    if decision is not None and decision.passed:
        return ChampionDecision("promote", candidate_name, f"{candidate_name} passed every gate and is promoted", False)
    why_not = f"{candidate_name} was refused ({'; '.join(decision.failures)})" if decision is not None else no_candidate_reason
    best = best_model(baselines)
    if champion is None:
        return ChampionDecision("baseline", best, f"{why_not}; no champion yet, so the best baseline {best} scores", True)
    failures = _comparison(baselines[best], champion, "champion", policy)
    if not failures:
        return ChampionDecision("baseline", best, f"{why_not}; the best baseline {best} beats the champion and scores", True)
    return ChampionDecision(
        "keep",
        "champion",
        f"{why_not}; the champion stays ({best} does not beat it: {'; '.join(failures)})",
        champion_is_baseline,
    )


__all__ = [
    "CHALLENGER_ALIAS",
    "CHAMPION_ALIAS",
    "DEFAULT_EXPERIMENT_NAME",
    "DEFAULT_MODEL_NAME",
    "ChampionDecision",
    "GateDecision",
    "GatePolicy",
    "RegisteredVersion",
    "best_model",
    "build_reference",
    "champion_version",
    "decide_challenger",
    "decide_champion",
    "delete_alias",
    "ensure_experiment",
    "estimator_of",
    "get_alias_version",
    "load_alias",
    "load_model_version",
    "load_reference",
    "log_estimator",
    "model_input",
    "predict",
    "set_alias",
    "signature",
]
