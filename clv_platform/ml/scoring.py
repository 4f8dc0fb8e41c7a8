"""Batch scoring: predicted CLV per customer with the model version on every row, and value tiers of the scores."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from clv_platform.ml.features import (
    CUTOFF_COLUMN,
    ID_COLUMN,
    PREDICTION_COLUMN,
    require_columns,
    require_numeric_finite,
    validate_feature_frame,
)
from clv_platform.ml.registry import predict

TIER_COLUMN = "value_tier"
TIER_LABELS: tuple[str, ...] = ("Low", "Medium", "High")
MODEL_COLUMNS: tuple[str, ...] = ("model_name", "model_version")
ARM_COLUMN = "arm"
SCORE_COLUMNS: tuple[str, ...] = (ID_COLUMN, CUTOFF_COLUMN, PREDICTION_COLUMN, *MODEL_COLUMNS, ARM_COLUMN)


def tier_cut_points(predictions: Sequence[float] | np.ndarray, tiers: Sequence[float] = (0.5, 0.9)) -> np.ndarray:
    """The predicted values at the quantile levels ``tiers``: where each tier above the lowest begins.

    Examples
    --------
    >>> tier_cut_points([0, 1, 2, 3, 4, 5, 6, 7, 8, 100]).round(6).tolist()
    [4.5, 17.2]
    """
    values = np.asarray(predictions, dtype="float64")
    levels = np.asarray(tiers, dtype="float64")
    if levels.size == 0 or not ((levels > 0) & (levels < 1)).all() or not (np.diff(levels) > 0).all():
        raise ValueError(f"tiers must be increasing quantile levels strictly between 0 and 1, got {list(tiers)}")
    if values.size == 0:
        raise ValueError("predictions must not be empty")
    if not np.isfinite(values).all():
        raise ValueError("predictions must be finite")
    return np.quantile(values, levels)


def value_tiers(
    predictions: Sequence[float] | np.ndarray,
    tiers: Sequence[float] = (0.5, 0.9),
    labels: Sequence[str] = TIER_LABELS,
) -> np.ndarray:
    """Label each prediction by the quantiles of all predictions.

    With the defaults a prediction is ``Low`` up to and including the median, ``Medium`` up to and
    including the 90th percentile, and ``High`` above it. Ties at a cut point go to the lower tier, so
    many equal predictions (all clipped to 0, say) land together in one tier and ``High`` may hold fewer
    than 10 % of the customers.

    Parameters
    ----------
    predictions
        Predicted values, finite.
    tiers
        Increasing quantile levels strictly between 0 and 1; one fewer than ``labels``.
    labels
        Tier names from lowest to highest value.

    Examples
    --------
    >>> value_tiers([0, 1, 2, 3, 4, 5, 6, 7, 8, 100]).tolist()
    ['Low', 'Low', 'Low', 'Low', 'Low', 'Medium', 'Medium', 'Medium', 'Medium', 'High']
    """
    if len(labels) != len(tiers) + 1:
        raise ValueError(f"labels must have one more entry than tiers: {len(labels)} labels for {len(tiers)} tiers")
    return tiers_at(predictions, tier_cut_points(predictions, tiers), labels)


def tiers_at(
    predictions: Sequence[float] | np.ndarray, cut_points: Sequence[float], labels: Sequence[str] = TIER_LABELS
) -> np.ndarray:
    """Label each prediction by given cut points (a scored population's, for customers scored later).

    Examples
    --------
    >>> tiers_at([1.0, 4.5, 4.6, 20.0], [4.5, 17.2]).tolist()
    ['Low', 'Low', 'Medium', 'High']
    """
    if len(labels) != len(cut_points) + 1:
        raise ValueError(f"labels must have one more entry than cut points: {len(labels)} labels for {len(cut_points)}")
    # side="left": a value equal to a cut point stays in the tier below it.
    index = np.searchsorted(np.asarray(cut_points, dtype="float64"), np.asarray(predictions, dtype="float64"), side="left")
    return np.asarray(labels, dtype=object)[index]


def _column_stem(label: str) -> str:
    """``"Medium"`` -> ``"medium"``, ``"Top 1%"`` -> ``"top_1"``: a tier label as part of a column name."""
    stem = re.sub(r"\W+", "_", str(label).lower()).strip("_")
    if not stem:
        raise ValueError(f"tier label {label!r} gives no column name: use letters or digits")
    return stem


def value_tier_table(
    scores: pd.DataFrame,
    tiers: Sequence[float] = (0.5, 0.9),
    labels: Sequence[str] = TIER_LABELS,
) -> pd.DataFrame:
    """One cutoff's scores with their value tier, the tier cut points and the model that made the scores.

    Parameters
    ----------
    scores
        ``scoring.clv_scores`` rows of one ``cutoff_date`` (:func:`score_customers`' columns).
    tiers, labels
        Quantile levels of the predictions and tier names; see :func:`value_tiers`.

    Returns
    -------
    pandas.DataFrame
        ``customer_id, cutoff_date, predicted_clv, value_tier``, then for every tier above the lowest
        ``<tier>_quantile`` (its level) and ``<tier>_cut_point`` (the predicted value at that level: the
        tier holds predictions above it), then ``model_name, model_version``; in the row order of ``scores``.

    Raises
    ------
    ValueError
        If a column is missing, ``scores`` is empty or spans several cutoffs (tiers are quantiles of one
        scoring population), or the tiers or labels break :func:`value_tiers`' rules.

    Examples
    --------
    >>> scores = pd.DataFrame({"customer_id": list("abcd"), "cutoff_date": "2024-07-01", "predicted_clv": [0.0, 10.0, 20.0, 90.0],
    ...                        "model_name": "clv_model", "model_version": "3", "arm": "champion"})
    >>> value_tier_table(scores, tiers=(0.5,), labels=("Rest", "Top"))[["customer_id", "value_tier", "top_cut_point"]]
      customer_id value_tier  top_cut_point
    0           a       Rest           15.0
    1           b       Rest           15.0
    2           c        Top           15.0
    3           d        Top           15.0
    """
    require_columns(scores, SCORE_COLUMNS, frame_name="scores")
    if len(scores) == 0:
        raise ValueError("scores must not be empty: there is nobody to tier")
    cutoffs = scores[CUTOFF_COLUMN].nunique()
    if cutoffs != 1:
        raise ValueError(f"scores column '{CUTOFF_COLUMN}' must hold a single scoring cutoff, got {cutoffs}")
    require_numeric_finite(scores, [PREDICTION_COLUMN], frame_name="scores")
    predictions = scores[PREDICTION_COLUMN].to_numpy(dtype="float64")
    table = scores.loc[:, [ID_COLUMN, CUTOFF_COLUMN, PREDICTION_COLUMN]].copy()
    table[TIER_COLUMN] = value_tiers(predictions, tiers, labels)
    stems = [_column_stem(label) for label in labels]
    if len(set(stems)) != len(stems):
        raise ValueError(f"tier labels must give distinct column names, got {list(labels)}")
    for stem, level, cut_point in zip(stems[1:], tiers, tier_cut_points(predictions, tiers), strict=True):
        table[f"{stem}_quantile"] = float(level)
        table[f"{stem}_cut_point"] = float(cut_point)
    for column in (*MODEL_COLUMNS, ARM_COLUMN):
        table[column] = scores[column].astype(str).to_numpy()
    return table


def tier_summary(tiers: pd.DataFrame, labels: Sequence[str] = TIER_LABELS) -> pd.DataFrame:
    """Per tier, lowest first: customers, their share, predicted value, its share, and the prediction range.

    Examples
    --------
    >>> tiers = pd.DataFrame({"value_tier": ["Low", "Low", "High"], "predicted_clv": [1.0, 3.0, 12.0]})
    >>> tier_summary(tiers)[["value_tier", "customers", "value_share"]].values.tolist()
    [['Low', 2, 0.25], ['Medium', 0, 0.0], ['High', 1, 0.75]]
    """
    require_columns(tiers, [TIER_COLUMN, PREDICTION_COLUMN], frame_name="tiers")
    unknown = sorted(set(tiers[TIER_COLUMN].astype(str)) - set(labels))
    if unknown:
        raise ValueError(f"tiers column '{TIER_COLUMN}' holds {unknown}, not among the labels {list(labels)}")
    grouped = tiers.groupby(TIER_COLUMN)[PREDICTION_COLUMN]
    summary = pd.DataFrame(
        {
            "customers": grouped.size(),
            "predicted_value": grouped.sum(),
            "min_predicted_clv": grouped.min(),
            "max_predicted_clv": grouped.max(),
        }
    ).reindex(list(labels))
    summary[["customers", "predicted_value"]] = summary[["customers", "predicted_value"]].fillna(0)
    summary["customers"] = summary["customers"].astype(int)
    total_value = float(summary["predicted_value"].sum())
    summary.insert(1, "customer_share", summary["customers"] / max(int(summary["customers"].sum()), 1))
    summary.insert(3, "value_share", summary["predicted_value"] / total_value if total_value > 0 else 0.0)
    return summary.rename_axis(TIER_COLUMN).reset_index()


def score_customers(
    model: Any,
    features: pd.DataFrame,
    model_name: str,
    model_version: str | int,
    predictions: pd.DataFrame | None = None,
    arm: str = "champion",
) -> pd.DataFrame:
    """Predicted CLV for every customer in ``features``, with the model version that made it.

    Parameters
    ----------
    model
        A loaded CLV pyfunc (any rung), typically :func:`clv_platform.ml.registry.load_model_version` of
        the version the ``champion`` alias names: ``predict`` takes the feature columns and returns
        ``predicted_clv`` and ``probability_alive``.
    features
        ``marts.customer_features``: one row per customer at a single ``cutoff_date``.
    model_name, model_version
        Written on every row, so each score names the model version that produced it.
    predictions
        ``registry.predict(model, features)`` when the caller already has it (it also reads
        ``probability_alive``), so the model runs once; by default the model is run here.
    arm
        The rollout arm these customers are in (``champion`` or ``challenger``), written on every row.

    Returns
    -------
    pandas.DataFrame
        Columns ``customer_id, cutoff_date, predicted_clv`` (``>= 0``), ``model_name, model_version`` (a
        string), ``arm``, in the row order of ``features``. Value tiers are :func:`value_tier_table` of these rows.

    Raises
    ------
    ValueError
        If ``features`` is empty, breaks the feature contract, or holds more than one ``cutoff_date``
        (a score table holds one scoring population per cutoff).
    """
    if not model_name:
        raise ValueError("model_name must be a non-empty string")
    if model_version is None or str(model_version) == "":
        raise ValueError("model_version must be given: every score records the version that produced it")
    validate_feature_frame(features)
    if len(features) == 0:
        raise ValueError("features must not be empty: there is nobody to score")
    cutoffs = features[CUTOFF_COLUMN].nunique()
    if cutoffs != 1:
        raise ValueError(f"features column '{CUTOFF_COLUMN}' must hold a single scoring cutoff, got {cutoffs}")

    # Every rung's contract says >= 0; clipping keeps a model that slips (squared-error trees) in it.
    output = predict(model, features) if predictions is None else predictions
    if len(output) != len(features):
        raise ValueError(f"predictions have {len(output)} rows for {len(features)} feature rows: pass the model's output on them")
    predictions = np.clip(output["predicted_clv"].to_numpy(dtype="float64"), 0.0, None)
    scores = pd.DataFrame(
        {
            ID_COLUMN: features[ID_COLUMN].to_numpy(),
            CUTOFF_COLUMN: features[CUTOFF_COLUMN].to_numpy(),
            PREDICTION_COLUMN: predictions,
            "model_name": model_name,
            "model_version": str(model_version),
            ARM_COLUMN: arm,
        }
    )
    return scores.loc[:, list(SCORE_COLUMNS)]


def score_arms(models: Mapping[str, tuple[Any, str]], features: pd.DataFrame, arms: np.ndarray, model_name: str) -> pd.DataFrame:
    """Each customer scored by the model of their arm: :func:`score_customers` per arm, in the row order of ``features``.

    Parameters
    ----------
    models
        Arm -> ``(loaded model, its version)``; every arm in ``arms`` must have one.
    arms
        The arm of each row of ``features`` (:func:`clv_platform.ml.rollout.assign_arms`).
    """
    arms = np.asarray(arms, dtype=object)
    if len(arms) != len(features):
        raise ValueError(f"{len(arms)} arms for {len(features)} feature rows: assign an arm to every customer")
    missing = sorted(set(arms) - set(models))
    if missing:
        raise ValueError(f"no model for the arm(s) {', '.join(missing)}")
    parts = []
    for arm, (model, version) in models.items():
        mask = arms == arm
        if mask.any():
            part = score_customers(model, features.loc[mask], model_name, version, arm=arm)
            parts.append(part.set_axis(np.flatnonzero(mask)))
    return pd.concat(parts).sort_index().reset_index(drop=True)


def active_customers(features: pd.DataFrame, active_within_days: int) -> pd.DataFrame:
    """Rows of customers whose last purchase is at most ``active_within_days`` before the cutoff.

    Days since the last purchase are ``T - recency`` (BTYD: ``T`` is the customer's age at the cutoff,
    ``recency`` their age at the last purchase). A customer who bought on the cutoff's eve has 0 or 1.

    Examples
    --------
    >>> frame = pd.DataFrame({"T": [100, 100], "recency": [95, 10]})
    >>> active_customers(frame, 30).index.tolist()
    [0]
    """
    if isinstance(active_within_days, bool) or not isinstance(active_within_days, (int, np.integer)):
        raise ValueError(f"active_within_days must be an integer number of days, got {active_within_days!r}")
    if active_within_days < 0:
        raise ValueError(f"active_within_days must be >= 0, got {active_within_days}")
    require_columns(features, ["T", "recency"], frame_name="features")
    require_numeric_finite(features, ["T", "recency"], frame_name="features")
    days_since_last_purchase = features["T"] - features["recency"]
    if (days_since_last_purchase < 0).any():
        raise ValueError("features column 'recency' must be <= 'T' (last purchase before the cutoff)")
    return features.loc[days_since_last_purchase <= active_within_days]
