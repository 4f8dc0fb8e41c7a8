"""Regression, ranking, calibration and fairness metrics for CLV predictions.

CLV models are used three ways: the predicted amount (RMSE, MAE, aggregate bias, decile calibration),
the ranking of customers for campaigns (Spearman, normalized Gini, top-share capture) and the treatment
of groups of customers (disparate-impact ratio of the mean prediction across slices). All functions
take array-likes of equal length and raise ``ValueError`` on empty, mismatched or non-finite input.

Ties in the prediction are handled one way everywhere: customers with equal predictions form a group
whose actual value is spread evenly across it, so no result depends on the row order.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def _tie_averaged_order(true: np.ndarray, score: np.ndarray) -> np.ndarray:
    """``true`` sorted by ``score`` descending, each group of tied scores replaced by its mean of ``true``.

    Within a group of equal scores the order is unknown: every member gets the group mean, which is the
    expected value at each position over all orders of the group.
    """
    frame = pd.DataFrame({"true": true, "score": score})
    frame["true"] = frame.groupby("score")["true"].transform("mean")
    return frame.sort_values("score", ascending=False, kind="stable")["true"].to_numpy()


def lorenz_curve(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative share of actual value captured when customers are taken by ``y_score``, highest first.

    Returns
    -------
    (customer_share, value_share)
        Both of length ``n + 1`` starting at ``(0, 0)``: after taking ``i`` customers, ``i / n`` of them
        hold ``value_share[i]`` of the total of ``y_true``. Tied scores share their group's mean.

    Raises
    ------
    ValueError
        If ``y_true`` sums to zero (no value to capture), besides the checks on every metric.

    Examples
    --------
    >>> x, y = lorenz_curve([1, 3], [0, 5])
    >>> x.tolist(), y.tolist()
    ([0.0, 0.5, 1.0], [0.0, 0.75, 1.0])
    """
    true, score = _as_pair(y_true, y_score)
    total = true.sum()
    if total == 0:
        raise ValueError("y_true must not sum to zero: the Lorenz curve is the share of its total captured")
    captured = np.concatenate([[0.0], np.cumsum(_tie_averaged_order(true, score)) / total])
    return np.linspace(0.0, 1.0, true.size + 1), captured


def _gini(true: np.ndarray, score: np.ndarray) -> float:
    """Gini of ``true`` ordered by ``score`` descending (the mean gap between the Lorenz curve and the diagonal)."""
    if true.sum() == 0:
        return float("nan")
    n = true.size
    captured = lorenz_curve(true, score)[1][1:]
    return float((captured.sum() - (n + 1) / 2.0) / n)


def normalized_gini(y_true, y_pred) -> float:
    """Gini of the ranking of ``y_true`` by ``y_pred``, divided by the Gini of the perfect ranking.

    Customers are sorted by prediction, highest first; the Gini is the mean gap between the cumulative
    share of actual value captured and the share of customers taken (the Kaggle "normalized Gini"
    construction). Dividing by the Gini of sorting by ``y_true`` itself gives 1 for a perfect ranking,
    0 for a ranking no better than a constant, and -1 for the reversed ranking. Only the order of
    ``y_pred`` matters.

    Ties: customers with equal predictions are treated as one group whose actual value is spread evenly
    across it (each member counts with the group mean, as in :func:`lorenz_curve`). A constant
    prediction therefore scores exactly 0, and the result does not depend on the row order, unlike
    implementations that break ties by position.

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


def spearman(y_true, y_pred) -> float:
    """Spearman rank correlation: the Pearson correlation of the ranks, ties given their average rank.

    Returns ``nan`` when either side is constant (its ranks have no variance).

    Examples
    --------
    >>> spearman([1, 2, 3], [10, 30, 20])
    0.5
    """
    true, pred = _as_pair(y_true, y_pred)
    ranks_true = pd.Series(true).rank(method="average").to_numpy()
    ranks_pred = pd.Series(pred).rank(method="average").to_numpy()
    centred_true, centred_pred = ranks_true - ranks_true.mean(), ranks_pred - ranks_pred.mean()
    denominator = np.sqrt((centred_true**2).sum() * (centred_pred**2).sum())
    if denominator == 0:
        return float("nan")
    return float((centred_true * centred_pred).sum() / denominator)


def top_share_capture(y_true, y_pred, share: float = 0.1) -> float:
    """Share of the total actual value held by the ``share`` of customers with the highest predictions.

    The top group is the first ``ceil(share * n)`` customers by prediction; customers tied at its edge
    count with their tie group's mean (:func:`lorenz_curve`). Returns ``nan`` when the actuals sum to zero.

    Examples
    --------
    >>> top_share_capture([1, 2, 3, 4, 0, 0, 0, 0, 0, 10], [9, 8, 7, 6, 5, 4, 3, 2, 1, 0], share=0.2)
    0.15
    """
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    true, pred = _as_pair(y_true, y_pred)
    if true.sum() == 0:
        return float("nan")
    top = int(np.ceil(share * true.size - 1e-9))
    return float(lorenz_curve(true, pred)[1][top])


def aggregate_bias(y_true, y_pred) -> float:
    """Total predicted over total actual, minus 1: ``0.1`` means the model forecasts 10 % too much revenue.

    Returns ``nan`` when the actuals sum to zero.

    Examples
    --------
    >>> aggregate_bias([10, 30], [20, 30])
    0.25
    """
    true, pred = _as_pair(y_true, y_pred)
    total = true.sum()
    if total == 0:
        return float("nan")
    return float(pred.sum() / total - 1.0)


def decile_calibration(y_true, y_pred, n_bins: int = 10) -> pd.DataFrame:
    """Mean predicted against mean actual in ``n_bins`` equal-count bins of the prediction.

    A customer's bin is ``floor(n_bins * (rank - 0.5) / n) + 1`` with ``rank`` the average rank of their
    prediction (1 = lowest): ``n_bins`` equal bins when there are no ties, and tied predictions always in
    the same bin (so a mass of zero predictions makes one larger bin and some bins empty; empty bins
    are left out). Bin ``n_bins`` holds the highest predictions.

    Returns
    -------
    pandas.DataFrame
        Columns ``decile``, ``mean_predicted``, ``mean_actual``, ``n``, one row per non-empty bin.

    Examples
    --------
    >>> decile_calibration([0, 2, 4, 6], [1, 2, 3, 4], n_bins=2)
       decile  mean_predicted  mean_actual  n
    0       1             1.5          1.0  2
    1       2             3.5          5.0  2
    """
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins}")
    true, pred = _as_pair(y_true, y_pred)
    ranks = pd.Series(pred).rank(method="average").to_numpy()
    bins = np.minimum(np.floor(n_bins * (ranks - 0.5) / true.size).astype("int64") + 1, int(n_bins))
    frame = pd.DataFrame({"decile": bins, "predicted": pred, "actual": true})
    table = frame.groupby("decile").agg(
        mean_predicted=("predicted", "mean"), mean_actual=("actual", "mean"), n=("actual", "size")
    )
    return table.reset_index()


@dataclass(frozen=True)
class DisparateImpact:
    """The disparate-impact ratio of the mean prediction across the slices of one grouping.

    Attributes
    ----------
    ratio
        Lowest slice mean prediction over the highest, among slices of at least ``min_size`` customers;
        ``nan`` when fewer than two slices are that large or their highest mean is 0.
    slice_means
        Mean prediction of each slice that counted.
    excluded
        Size of each slice left out for being smaller than ``min_size``.
    """

    ratio: float
    slice_means: dict[str, float]
    excluded: dict[str, int]

    @property
    def lowest(self) -> str | None:
        """The counted slice with the lowest mean prediction."""
        return min(self.slice_means, key=self.slice_means.__getitem__) if self.slice_means else None

    @property
    def highest(self) -> str | None:
        """The counted slice with the highest mean prediction."""
        return max(self.slice_means, key=self.slice_means.__getitem__) if self.slice_means else None


def disparate_impact_ratio(y_pred, groups, *, min_size: int = 30) -> DisparateImpact:
    """Lowest over highest mean prediction across the slices named by ``groups``.

    1 means every slice gets the same mean prediction; the common "four-fifths" rule flags a ratio
    below 0.8. Slices smaller than ``min_size`` are left out (their mean is noise) and reported.

    Parameters
    ----------
    y_pred
        Predictions, ``>= 0`` (a ratio of means is meaningless with negative values).
    groups
        The slice of each row (e.g. country), same length, no nulls.
    min_size
        Smallest slice that counts.

    Examples
    --------
    >>> result = disparate_impact_ratio([1, 1, 2, 2, 5], ["a", "a", "b", "b", "c"], min_size=2)
    >>> result.ratio, result.slice_means, result.excluded
    (0.5, {'a': 1.0, 'b': 2.0}, {'c': 1})
    """
    pred = np.asarray(y_pred, dtype="float64").ravel()
    labels = pd.Series(np.asarray(groups, dtype="object").ravel())
    if pred.size == 0:
        raise ValueError("y_pred must not be empty")
    if labels.size != pred.size:
        raise ValueError(f"y_pred and groups must have the same length, got {pred.size} and {labels.size}")
    if not np.isfinite(pred).all():
        raise ValueError(f"y_pred must be finite: {int((~np.isfinite(pred)).sum())} null or infinite value(s)")
    if (pred < 0).any():
        raise ValueError(f"y_pred must be >= 0 for a ratio of means: {int((pred < 0).sum())} negative value(s)")
    if labels.isna().any():
        raise ValueError(f"groups must not be null: {int(labels.isna().sum())} null value(s)")
    stats = pd.DataFrame({"group": labels.astype(str), "pred": pred}).groupby("group")["pred"].agg(["mean", "size"])
    counted = stats[stats["size"] >= min_size]
    excluded = {str(name): int(size) for name, size in stats.loc[stats["size"] < min_size, "size"].items()}
    means = {str(name): float(value) for name, value in counted["mean"].items()}
    highest = max(means.values(), default=0.0)
    ratio = min(means.values()) / highest if len(means) >= 2 and highest > 0 else float("nan")
    return DisparateImpact(ratio=float(ratio), slice_means=means, excluded=excluded)


def relative_disparate_impact(predicted_ratio: float, actual_ratio: float) -> float:
    """A model's disparate-impact ratio against the actual revenue's on the same slices, capped at 1.

    Customers in different countries or channels really do spend differently, so a perfect model's
    ratio is the actual revenue's, not 1. Dividing by it measures only the gap a model adds: 1 when it
    separates the slices no more than reality does, 0.5 when its lowest-to-highest ratio is half the
    actual one. ``nan`` when either ratio is undefined or the actual one is 0.

    Examples
    --------
    >>> relative_disparate_impact(0.3, 0.6), relative_disparate_impact(0.7, 0.6)
    (0.5, 1.0)
    """
    if not (np.isfinite(predicted_ratio) and np.isfinite(actual_ratio)) or actual_ratio <= 0:
        return float("nan")
    return float(min(1.0, predicted_ratio / actual_ratio))


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
