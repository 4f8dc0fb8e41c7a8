"""How a challenger's predictions differ from the champion's on the same customers: the shadow comparison.

A challenger scores beside the champion without its scores being used (``scoring/shadow_scores``). What a
person needs before promoting it is how much it would change: the relative shift of the mean prediction,
whether it ranks customers alike (Spearman), whether it picks the same best customers (top-decile overlap),
and how many customers would change value tier under the scoring batch's own cut points (the tier moves).
The same mean shift is a blocking gate (:mod:`clv_platform.ml.gates`): :func:`mean_shift` is its one definition.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from clv_platform.ml.metrics import spearman
from clv_platform.ml.scoring import TIER_LABELS, tiers_at

TOP_SHARE = 0.1


def _pair(champion, challenger) -> tuple[np.ndarray, np.ndarray]:
    first = np.asarray(champion, dtype="float64").ravel()
    second = np.asarray(challenger, dtype="float64").ravel()
    if first.size == 0:
        raise ValueError("champion predictions must not be empty: there is nobody to compare")
    if first.shape != second.shape:
        raise ValueError(
            f"champion and challenger predictions must be on the same customers, got {first.size} and {second.size} values"
        )
    for name, values in (("champion", first), ("challenger", second)):
        if not np.isfinite(values).all():
            raise ValueError(f"{name} predictions must be finite: {int((~np.isfinite(values)).sum())} null or infinite value(s)")
    return first, second


def relative_shift(champion_mean: float, challenger_mean: float) -> float:
    """``(challenger_mean - champion_mean) / champion_mean``; 0 when both are 0, ``inf`` when only the champion's is.

    Examples
    --------
    >>> relative_shift(100.0, 114.0)
    0.14
    >>> relative_shift(0.0, 0.0), relative_shift(0.0, 5.0)
    (0.0, inf)
    """
    champion_mean, challenger_mean = float(champion_mean), float(challenger_mean)
    if champion_mean == 0.0:
        return 0.0 if challenger_mean == 0.0 else math.copysign(math.inf, challenger_mean)
    return (challenger_mean - champion_mean) / abs(champion_mean)


def mean_shift(champion, challenger) -> float:
    """The relative shift of the mean prediction from the champion's to the challenger's, on the same customers.

    Examples
    --------
    >>> mean_shift([100.0, 300.0], [90.0, 250.0])
    -0.15
    """
    first, second = _pair(champion, challenger)
    return relative_shift(first.mean(), second.mean())


def _top(values: np.ndarray, share: float) -> set[int]:
    # Highest first; ties at the edge go to the earlier row, so the result depends only on the row order given.
    k = max(1, math.ceil(share * values.size))
    return set(np.argsort(-values, kind="stable")[:k].tolist())


def top_overlap(champion, challenger, share: float = TOP_SHARE) -> float:
    """Share of the champion's top ``share`` of customers (``ceil(share * n)``, at least one) also in the challenger's.

    Examples
    --------
    >>> top_overlap([5, 4, 3, 2, 1], [1, 4, 3, 2, 5], share=0.4)
    0.5
    """
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must be in (0, 1], got {share}")
    first, second = _pair(champion, challenger)
    top = _top(first, share)
    return len(top & _top(second, share)) / len(top)


def tier_moves(champion, challenger, cut_points: Sequence[float], labels: Sequence[str] = TIER_LABELS) -> pd.DataFrame:
    """Customers per champion tier (rows) and challenger tier (columns), both tiered at the same ``cut_points``.

    The diagonal holds the customers who keep their tier; every label is a row and a column, lowest first.

    Examples
    --------
    >>> tier_moves([1.0, 5.0, 20.0], [6.0, 5.0, 2.0], [4.5, 17.2]).values.tolist()
    [[0, 1, 0], [0, 1, 0], [1, 0, 0]]
    """
    first, second = _pair(champion, challenger)
    table = pd.crosstab(
        pd.Categorical(tiers_at(first, cut_points, labels), categories=list(labels)),
        pd.Categorical(tiers_at(second, cut_points, labels), categories=list(labels)),
        dropna=False,
    )
    table = table.reindex(index=list(labels), columns=list(labels), fill_value=0).astype("int64")
    return table.rename_axis(index="champion_tier", columns="challenger_tier")


@dataclass(frozen=True)
class ShadowComparison:
    """The challenger against the champion on one scored population.

    Attributes
    ----------
    customers
        Customers compared.
    champion_mean, challenger_mean
        Mean prediction of each.
    mean_shift
        :func:`relative_shift` of the means (0.05 = the challenger predicts 5 % more on average).
    spearman
        Rank correlation of the two predictions (``nan`` when either is constant).
    top_decile_overlap
        :func:`top_overlap` at 10 %.
    tier_moves
        :func:`tier_moves` at the batch's cut points.
    """

    customers: int
    champion_mean: float
    challenger_mean: float
    mean_shift: float
    spearman: float
    top_decile_overlap: float
    tier_moves: pd.DataFrame

    @property
    def customers_changing_tier(self) -> int:
        """Customers off the diagonal of :attr:`tier_moves`."""
        values = self.tier_moves.to_numpy()
        return int(values.sum() - np.trace(values))

    def metrics(self) -> dict[str, float]:
        """The numbers, by name (for metadata and logs)."""
        return {
            "customers": self.customers,
            "champion_mean_prediction": self.champion_mean,
            "challenger_mean_prediction": self.challenger_mean,
            "mean_shift": self.mean_shift,
            "spearman": self.spearman,
            "top_decile_overlap": self.top_decile_overlap,
            "customers_changing_tier": self.customers_changing_tier,
        }

    def tier_moves_markdown(self) -> str:
        """:attr:`tier_moves` as a markdown table: champion tier down, challenger tier across."""
        columns = [str(c) for c in self.tier_moves.columns]
        lines = ["| champion tier \\ challenger tier | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
        for label, row in self.tier_moves.iterrows():
            lines.append(f"| {label} | " + " | ".join(str(int(v)) for v in row) + " |")
        return "\n".join(lines)


def compare(champion, challenger, cut_points: Sequence[float], labels: Sequence[str] = TIER_LABELS) -> ShadowComparison:
    """Compare the challenger's predictions with the champion's on the same customers, row by row.

    Parameters
    ----------
    champion, challenger
        Predicted values of the same customers in the same order, finite.
    cut_points, labels
        The scoring batch's tier cut points and tier names (:func:`clv_platform.ml.scoring.tiers_at`).

    Examples
    --------
    >>> result = compare([10.0, 20.0, 30.0, 40.0], [12.0, 18.0, 36.0, 44.0], [15.0, 35.0])
    >>> round(result.mean_shift, 6), result.spearman, result.top_decile_overlap, result.customers_changing_tier
    (0.1, 1.0, 1.0, 1)
    """
    first, second = _pair(champion, challenger)
    return ShadowComparison(
        customers=int(first.size),
        champion_mean=float(first.mean()),
        challenger_mean=float(second.mean()),
        mean_shift=relative_shift(first.mean(), second.mean()),
        spearman=spearman(first, second),
        top_decile_overlap=top_overlap(first, second, TOP_SHARE),
        tier_moves=tier_moves(first, second, cut_points, labels),
    )


__all__ = ["TOP_SHARE", "ShadowComparison", "compare", "mean_shift", "relative_shift", "tier_moves", "top_overlap"]
