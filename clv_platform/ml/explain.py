"""Why a model predicts what it does: per-customer top drivers and global feature importance.

Everything here reads additive contributions in the shape of
:meth:`clv_platform.ml.estimator.CLVEstimator.contributions`: one column per feature plus ``bias``,
each row summing to the model's raw output. For XGBoost those are SHAP values from TreeSHAP
(:func:`xgb_contributions`); for a linear model ``coef * x``.

Cost at scale (``benchmarks/explanations.py``, numbers in ``benchmarks/RESULTS.md``): exact TreeSHAP
costs 60-440x prediction on the pipeline's model sizes, ``approx_contribs`` (Saabas) 3-7x, and its first
driver agrees with exact TreeSHAP's on most rows. So scoring (``scoring/clv_explanations``) explains
every customer, whatever the rung, with :func:`explain_customers`, approximately by default; exact
TreeSHAP is for few rows: global importance on a sample, the top customers a person reads.
Contributions are computed in batches of ``batch_size`` rows so memory stays bounded by one batch
however many rows are explained; :func:`explain_top_drivers` keeps only the top drivers of each batch,
for any estimator.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from clv_platform.ml.features import require_columns, require_numeric_finite

BIAS_COLUMN = "bias"
DEFAULT_BATCH_SIZE = 50_000


def _feature_part(contributions: pd.DataFrame) -> pd.DataFrame:
    """The feature columns of a contributions frame, checked: a ``bias`` column, numeric and finite."""
    require_columns(contributions, [BIAS_COLUMN], frame_name="contributions")
    features = contributions.drop(columns=BIAS_COLUMN)
    if features.shape[1] == 0:
        raise ValueError("contributions must have at least one feature column besides 'bias'")
    require_numeric_finite(contributions, contributions.columns, frame_name="contributions")
    return features


def _format_amount(value: float) -> str:
    """A signed amount short enough for a sentence: ``+412``, ``-1,305``, ``+3.2``, ``-0.041``."""
    size = abs(value)
    if size >= 100:
        return f"{value:+,.0f}"
    if size >= 1:
        return f"{value:+.1f}"
    return f"{value:+.2g}"


def top_drivers(contributions: pd.DataFrame, k: int = 3) -> pd.DataFrame:
    """The ``k`` features with the largest absolute contribution in each row, with their signed values.

    Parameters
    ----------
    contributions
        One column per feature plus ``bias`` (which is never a driver).
    k
        Drivers per row. Features contributing exactly 0 are not drivers, so a row may have fewer
        (the remaining names are ``None``, values ``nan``). Equal sizes keep the column order.

    Returns
    -------
    pandas.DataFrame
        Same index; columns ``driver_1``, ``driver_1_contribution``, ..., ``driver_k_contribution`` and
        ``drivers``, a short text such as ``"spend_365d +412, recency -130"``.

    Examples
    --------
    >>> frame = pd.DataFrame({"spend_365d": [412.0, 0.0], "recency": [-130.2, 3.0], "bias": [50.0, 50.0]})
    >>> top_drivers(frame, k=2)["drivers"].tolist()
    ['spend_365d +412, recency -130', 'recency +3.0']
    """
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    features = _feature_part(contributions)
    k = min(int(k), features.shape[1])
    values = features.to_numpy(dtype="float64")
    names = np.asarray(features.columns, dtype="object")
    order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :k]
    top_values = np.take_along_axis(values, order, axis=1)
    top_names = np.where(top_values != 0, names[order], None)
    top_values = np.where(top_values != 0, top_values, np.nan)

    result = {}
    for i in range(k):
        result[f"driver_{i + 1}"] = top_names[:, i]
        result[f"driver_{i + 1}_contribution"] = top_values[:, i]
    result["drivers"] = [
        ", ".join(
            f"{name} {_format_amount(value)}" for name, value in zip(row_names, row_values, strict=True) if name is not None
        )
        for row_names, row_values in zip(top_names.tolist(), top_values.tolist(), strict=True)
    ]
    return pd.DataFrame(result, index=contributions.index)


def global_importance(contributions: pd.DataFrame) -> pd.Series:
    """Mean absolute contribution of each feature over the rows, largest first (``bias`` left out).

    Examples
    --------
    >>> frame = pd.DataFrame({"a": [1.0, -3.0], "b": [0.5, 0.5], "bias": [9.0, 9.0]})
    >>> global_importance(frame).to_dict()
    {'a': 2.0, 'b': 0.5}
    """
    features = _feature_part(contributions)
    if len(features) == 0:
        raise ValueError("contributions must not be empty")
    importance = features.abs().mean().sort_values(ascending=False, kind="stable")
    return importance.rename("mean_abs_contribution")


def _booster(model: Any):
    """The ``xgboost.Booster`` of a booster, an ``XGBRegressor`` or anything with ``get_booster()``."""
    import xgboost as xgb

    if isinstance(model, xgb.Booster):
        return model
    if hasattr(model, "get_booster"):
        return model.get_booster()
    raise ValueError(f"model must be an xgboost Booster or have get_booster(), got {type(model).__name__}")


def iter_xgb_contributions(
    model: Any,
    features: pd.DataFrame,
    *,
    approx: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    feature_columns: Sequence[str] | None = None,
) -> Iterator[pd.DataFrame]:
    """:func:`xgb_contributions` one batch of rows at a time, in row order, each with its slice of the index."""
    import xgboost as xgb

    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    booster = _booster(model)
    columns = list(feature_columns or booster.feature_names or [])
    if not columns:
        raise ValueError("the model has no feature names: pass feature_columns")
    require_columns(features, columns, frame_name="features")
    # Early stopping keeps the later trees in the booster; predictions use the best iteration, so must this.
    best = booster.attr("best_iteration")
    iteration_range = (0, int(best) + 1) if best is not None else (0, 0)
    for start in range(0, len(features), int(batch_size)):
        batch = features.iloc[start : start + int(batch_size)]
        require_numeric_finite(batch, columns, frame_name="features")
        matrix = xgb.DMatrix(batch.loc[:, columns].to_numpy(dtype="float32"), feature_names=columns)
        values = booster.predict(matrix, pred_contribs=True, approx_contribs=approx, iteration_range=iteration_range)
        yield pd.DataFrame(values.astype("float64"), columns=[*columns, BIAS_COLUMN], index=batch.index)


def xgb_contributions(
    model: Any,
    features: pd.DataFrame,
    *,
    approx: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    feature_columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Per-feature contributions of an XGBoost model: SHAP values, one column per feature plus ``bias``.

    Parameters
    ----------
    model
        An ``xgboost.Booster``, an ``XGBRegressor`` or anything with ``get_booster()``. With early
        stopping, the trees up to the best iteration are used, as in prediction.
    features
        At least the model's feature columns, numeric and finite.
    approx
        ``False``: exact TreeSHAP (``pred_contribs``). ``True``: XGBoost's ``approx_contribs`` (Saabas:
        each split's change in the node mean goes to its feature), much faster and also summing to the
        raw output, but not consistent the way SHAP is.
    batch_size
        Rows per ``DMatrix``; bounds the working memory.
    feature_columns
        The model's inputs in order; by default the booster's feature names.

    Returns
    -------
    pandas.DataFrame
        Same index as ``features``; each row sums to the model's raw output (the margin: for a log link
        the log of the prediction).
    """
    batches = list(iter_xgb_contributions(model, features, approx=approx, batch_size=batch_size, feature_columns=feature_columns))
    if not batches:
        raise ValueError("features must not be empty")
    return pd.concat(batches) if len(batches) > 1 else batches[0]


def explain_top_drivers(
    explainer: Any,
    features: pd.DataFrame,
    *,
    k: int = 3,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> pd.DataFrame:
    """:func:`top_drivers` of every row of ``features``, computing contributions one batch at a time.

    What scoring runs at 1M customers: memory holds one batch of contributions and ``k`` drivers per row,
    not every feature's contribution for every row.

    Parameters
    ----------
    explainer
        A fitted :class:`~clv_platform.ml.estimator.CLVEstimator` (its ``contributions``), or any
        callable from a frame of features to a contributions frame, e.g.
        ``functools.partial(xgb_contributions, booster, approx=True)``.
    features
        The rows to explain.

    Examples
    --------
    >>> features = pd.DataFrame({"a": [1.0, -2.0, 3.0], "b": [0.5, 0.0, -9.0]})
    >>> linear = lambda x: x.assign(bias=1.0)
    >>> explain_top_drivers(linear, features, k=1, batch_size=2)["drivers"].tolist()
    ['a +1.0', 'a -2.0', 'b -9.0']
    """
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    if len(features) == 0:
        raise ValueError("features must not be empty")
    contributions_of = getattr(explainer, "contributions", explainer)
    if not callable(contributions_of):
        raise ValueError(f"explainer must be an estimator or a callable, got {type(explainer).__name__}")
    parts = []
    for start in range(0, len(features), int(batch_size)):
        contributions = contributions_of(features.iloc[start : start + int(batch_size)])
        if contributions is None:
            name = getattr(explainer, "name", type(explainer).__name__)
            raise ValueError(f"the {name} model has no per-feature contributions to explain")
        parts.append(top_drivers(contributions, k=k))
    return pd.concat(parts)


NO_CONTRIBUTIONS = "none"


def _no_names(index: pd.Index) -> pd.Series:
    """A driver-name column with no driver in any row."""
    return pd.Series(pd.NA, index=index, dtype="string")


def _as_table(drivers: pd.DataFrame, method: str, scale: str | None) -> pd.DataFrame:
    """The drivers with ``method`` and ``contribution_scale``, text columns as pandas strings.

    A text column that is null in every row (no drivers) then still stores as text, not as an untyped null.
    """
    table = drivers.assign(method=method, contribution_scale=scale)
    text = [c for c in table.columns if not c.endswith("_contribution")]
    return table.astype({column: "string" for column in text})


def explain_customers(
    estimator: Any,
    features: pd.DataFrame,
    *,
    k: int = 3,
    approx: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> pd.DataFrame:
    """The top ``k`` drivers of every row for any rung, saying how they were computed and in what unit.

    Parameters
    ----------
    estimator
        A fitted :class:`~clv_platform.ml.estimator.CLVEstimator`, e.g. the champion through
        :func:`clv_platform.ml.registry.estimator_of`.
    features
        The rows to explain (at least the estimator's feature columns).
    k
        Drivers per row.
    approx
        For a model that has both (XGBoost): Saabas' approximate TreeSHAP (``True``, 3-7x the cost of
        prediction) or exact TreeSHAP (``False``, 60-440x; ``benchmarks/RESULTS.md``). The estimator
        itself is not changed.
    batch_size
        Rows whose contributions are held in memory at once.

    Returns
    -------
    pandas.DataFrame
        Same index as ``features``: :func:`top_drivers`' columns, then ``method`` (the estimator's
        ``contribution_method``) and ``contribution_scale`` (the unit of the contributions, e.g.
        ``log_revenue`` for a Tweedie model); text columns as pandas ``string`` (a missing driver is ``<NA>``).
        A model with no per-feature contributions (the heuristic, BG/NBD + Gamma-Gamma) gets no drivers,
        ``method`` ``"none"`` and a ``drivers`` text saying so.

    Examples
    --------
    >>> from clv_platform.ml.baselines import HeuristicModel
    >>> frame = pd.DataFrame({"T": [400.0], "spend_365d": [365.0], "horizon_days": 91, "future_revenue": 0.0,
    ...                       "customer_id": "a", "cutoff_date": "2024-07-01"})
    >>> explain_customers(HeuristicModel().fit(frame), frame)[["driver_1", "method", "drivers"]].to_dict("records")
    [{'driver_1': None, 'method': 'none', 'drivers': 'no drivers: the heuristic model has no additive per-feature contributions'}]
    """
    import copy

    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    if len(features) == 0:
        raise ValueError("features must not be empty")
    explainer = estimator
    if hasattr(estimator, "approx_contributions") and estimator.approx_contributions != approx:
        # A shallow copy shares the fitted booster; only the switch differs.
        explainer = copy.copy(estimator)
        explainer.approx_contributions = approx
    method = explainer.contribution_method
    if method is None:
        name = getattr(estimator, "name", type(estimator).__name__)
        text = f"no drivers: the {name} model has no additive per-feature contributions"
        drivers = pd.DataFrame({"drivers": text}, index=features.index)
    else:
        drivers = explain_top_drivers(explainer, features, k=k, batch_size=batch_size)
    # top_drivers caps k at the model's feature count; the table keeps k driver columns whatever the rung.
    for i in range(1, int(k) + 1):
        if f"driver_{i}" not in drivers.columns:
            drivers.insert(len(drivers.columns) - 1, f"driver_{i}", _no_names(drivers.index))
            drivers.insert(len(drivers.columns) - 1, f"driver_{i}_contribution", np.nan)
    return _as_table(drivers, method or NO_CONTRIBUTIONS, explainer.contribution_scale)


def scored_rows(scores: pd.DataFrame, features: pd.DataFrame) -> tuple[str, list[str], pd.DataFrame]:
    """One scored cutoff joined to its features: the model name, the versions that scored it, and the rows to explain.

    Parameters
    ----------
    scores
        The rows of ``scoring.clv_scores`` of one cutoff (``customer_id``, ``cutoff_date``, ``predicted_clv``,
        ``model_name``, ``model_version``).
    features
        ``marts.customer_features`` at that cutoff.

    Returns
    -------
    tuple
        ``(model_name, versions, rows)``: ``versions`` every model version of the cutoff (two under a canary or
        A/B rollout), in order of first appearance; ``rows`` the scores' ids, cutoff, ``predicted_clv`` and
        ``model_version`` with every feature column, in the scores' order. Each row is explained by its version.

    Raises
    ------
    ValueError
        When the cutoff holds more than one model name, or a scored customer has no feature row there.
    """
    cutoff = scores["cutoff_date"].iloc[0]
    names = scores["model_name"].astype(str).unique()
    if len(names) != 1:
        raise ValueError(f"scoring.clv_scores at {cutoff} holds {len(names)} registered models; one cutoff is scored by one.")
    versions = [str(v) for v in scores["model_version"].astype(str).unique()]
    rows = (
        scores[["customer_id", "cutoff_date", "predicted_clv", "model_version"]]
        .astype({"model_version": str})
        .merge(features, on=["customer_id", "cutoff_date"], how="left", indicator=True)
    )
    unmatched = int((rows.pop("_merge") != "both").sum())
    if unmatched:
        raise ValueError(
            f"{unmatched} of {len(scores)} customers scored at {pd.Timestamp(cutoff).date()} have no row in "
            "marts.customer_features at that cutoff: rescore (scoring/clv_scores) after the feature build."
        )
    return str(names[0]), versions, rows
