"""Batch scoring: predicted CLV per customer, value tiers, and the model version on every row."""

from __future__ import annotations

from collections.abc import Sequence
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
SCORE_COLUMNS: tuple[str, ...] = (
    ID_COLUMN,
    CUTOFF_COLUMN,
    PREDICTION_COLUMN,
    TIER_COLUMN,
    "model_name",
    "model_version",
)


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
    values = np.asarray(predictions, dtype="float64")
    levels = np.asarray(tiers, dtype="float64")
    if len(labels) != len(levels) + 1:
        raise ValueError(f"labels must have one more entry than tiers: {len(labels)} labels for {len(levels)} tiers")
    if levels.size == 0 or not ((levels > 0) & (levels < 1)).all() or not (np.diff(levels) > 0).all():
        raise ValueError(f"tiers must be increasing quantile levels strictly between 0 and 1, got {list(tiers)}")
    if values.size == 0:
        raise ValueError("predictions must not be empty")
    if not np.isfinite(values).all():
        raise ValueError("predictions must be finite")
    cut_points = np.quantile(values, levels)
    # side="left": a value equal to a cut point stays in the tier below it.
    index = np.searchsorted(cut_points, values, side="left")
    return np.asarray(labels, dtype=object)[index]


def score_customers(
    model: Any,
    features: pd.DataFrame,
    model_name: str,
    model_version: str | int,
    tiers: Sequence[float] = (0.5, 0.9),
    *,
    tier_labels: Sequence[str] = TIER_LABELS,
) -> pd.DataFrame:
    """Predicted CLV and value tier for every customer in ``features``.

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
    tiers, tier_labels
        Quantile cut points of the predictions and tier names; see :func:`value_tiers`.

    Returns
    -------
    pandas.DataFrame
        Columns ``customer_id, cutoff_date, predicted_clv`` (``>= 0``), ``value_tier, model_name,
        model_version`` (a string), in the row order of ``features``.

    Raises
    ------
    ValueError
        If ``features`` is empty, breaks the feature contract, or holds more than one ``cutoff_date``
        (tiers are quantiles of one scoring population).
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
    predictions = np.clip(predict(model, features)["predicted_clv"].to_numpy(dtype="float64"), 0.0, None)
    scores = pd.DataFrame(
        {
            ID_COLUMN: features[ID_COLUMN].to_numpy(),
            CUTOFF_COLUMN: features[CUTOFF_COLUMN].to_numpy(),
            PREDICTION_COLUMN: predictions,
            TIER_COLUMN: value_tiers(predictions, tiers, tier_labels),
            "model_name": model_name,
            "model_version": str(model_version),
        }
    )
    return scores.loc[:, list(SCORE_COLUMNS)]


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
