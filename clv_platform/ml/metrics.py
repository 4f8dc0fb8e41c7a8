"""Regression and ranking metrics for CLV predictions.

CLV models are used twice: the predicted amount (RMSE, MAE) and the ranking of customers for campaigns
(normalized Gini). All functions take array-likes of equal length and raise ``ValueError`` on empty,
mismatched or non-finite input.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _as_pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    true = np.asarray(y_true, dtype="float64").ravel()
    pred = np.asarray(y_pred, dtype="float64").ravel()
    if true.size == 0:
        raise ValueError("y_true must not be empty")
    if true.shape != pred.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {true.size} and {pred.size}")
    for name, values in (("y_true", true), ("y_pred", pred)):
        if not np.isfinite(values).all():
            raise ValueError(f"{name} must be finite: {int((~np.isfinite(values)).sum())} null or infinite value(s)")
    return true, pred


def rmse(y_true, y_pred) -> float:
    """Root mean squared error.

    Examples
    --------
    >>> rmse([0, 0], [3, 4])
    3.5355339059327378
    """
    true, pred = _as_pair(y_true, y_pred)
    return float(np.sqrt(np.mean((true - pred) ** 2)))


def mae(y_true, y_pred) -> float:
    """Mean absolute error.

    Examples
    --------
    >>> mae([0, 0], [3, -4])
    3.5
    """
    true, pred = _as_pair(y_true, y_pred)
    return float(np.mean(np.abs(true - pred)))


def _gini(true: np.ndarray, score: np.ndarray) -> float:
    """Gini of ``true`` ordered by ``score`` descending, tied scores sharing their group's mean of ``true``."""
    total = true.sum()
    if total == 0:
        return float("nan")
    frame = pd.DataFrame({"true": true, "score": score})
    # Within a group of equal scores the order is unknown: every member gets the group mean, which is the
    # same as drawing the Lorenz curve as a straight line across the group (the expected curve over all
    # orders of the group). The result then does not depend on the input order.
    frame["true"] = frame.groupby("score")["true"].transform("mean")
    ordered = frame.sort_values("score", ascending=False, kind="stable")["true"].to_numpy()
    n = ordered.size
    lorenz = np.cumsum(ordered) / total
    return float((lorenz.sum() - (n + 1) / 2.0) / n)


def normalized_gini(y_true, y_pred) -> float:
    """Gini of the ranking of ``y_true`` by ``y_pred``, divided by the Gini of the perfect ranking.

    Customers are sorted by prediction, highest first; the Gini is the mean gap between the cumulative
    share of actual value captured and the share of customers taken (the Kaggle "normalized Gini"
    construction). Dividing by the Gini of sorting by ``y_true`` itself gives 1 for a perfect ranking,
    0 for a ranking no better than a constant, and -1 for the reversed ranking. Only the order of
    ``y_pred`` matters.

    Ties: customers with equal predictions are treated as one group whose actual value is spread evenly
    across it (each member counts with the group mean). A constant prediction therefore scores exactly 0,
    and the result does not depend on the row order, unlike implementations that break ties by position.

    Returns ``nan`` when it is undefined: the actuals sum to zero, or they are all equal (perfect Gini 0).

    Examples
    --------
    >>> round(normalized_gini([4, 3, 2, 1], [2, 1, 1, 0]), 6)
    0.9
    >>> normalized_gini([4, 3, 2, 1], [1, 1, 1, 1])
    0.0
    """
    true, pred = _as_pair(y_true, y_pred)
    perfect = _gini(true, true)
    if not np.isfinite(perfect) or perfect == 0:
        return float("nan")
    return _gini(true, pred) / perfect


def regression_metrics(y_true, y_pred) -> dict[str, float]:
    """``rmse``, ``mae`` and ``normalized_gini`` of a prediction, keyed by those names.

    Examples
    --------
    >>> regression_metrics([0.0, 10.0], [0.0, 10.0])
    {'rmse': 0.0, 'mae': 0.0, 'normalized_gini': 1.0}
    """
    return {
        "rmse": rmse(y_true, y_pred),
        "mae": mae(y_true, y_pred),
        "normalized_gini": normalized_gini(y_true, y_pred),
    }
