"""Population stability index (PSI) per column, by hand and through an Evidently 0.7 report.

Two numbers exist for each column, and they are not the same statistic:

- :func:`psi` (the platform's number, the one to alert on): ten bins at the reference's deciles, bins
  closed on the right, so a point mass such as "no orders in 30 days" is a bin of its own; the bins
  depend on the reference only.
- Evidently's ``psi`` stattest (``evidently_psi`` in :class:`DriftResult`, and the HTML report): for a
  column with more than 20 distinct reference values it uses *equal-width* bins (Sturges' rule,
  ``log2(n) + 1`` bins: 12 for 2,000 values) over the range of reference and current together, and
  ignores the requested number of bins (evidentlyai/evidently#1400, open). With at most 20 distinct
  values it gives every value its own bin. Empty bins get 1e-4, or the smallest non-empty share / 1e6
  when that share is <= 1e-4.

Where they disagree (measured in ``tests/unit/test_ml_drift.py``): on a skewed, zero-heavy column with a
wide range (``spend_30d``, ``monetary_value``), equal-width bins put the zeros and most spenders in the
first bin and one outlier in the current data widens every bin, so Evidently can report almost no drift
when the share of zeros moves a lot. On a large reference (more than 10,000 rows) its epsilon falls to
about 1e-10 and a handful of values in a bin that was empty in the reference outweighs everything else.
On columns with few distinct values they agree exactly when every value has a decile bin of its own;
otherwise ours merges the rare top values into one bin while Evidently keeps one per value (new values
included), so it reads somewhat higher when that tail moves.

On real data (UCI Online Retail, mart features at the 2011-04-01 and 2011-09-01 cutoffs) the money
columns read ``spend_90d`` 0.32 / 0.004, ``monetary_value`` 0.13 / 0.002, ``spend_30d`` 0.12 / 0.009
(ours / Evidently), while count columns agree (``orders_90d`` 0.34 / 0.36, ``orders_30d`` 0.12 / 0.13).
Evidently reads higher where the current range extends past the reference (``T`` 2.3 / 5.9, ``recency``
0.56 / 2.1), because the new range gets bins of its own with the epsilon share in the reference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clv_platform.ml.features import FEATURE_COLUMNS, PREDICTION_COLUMN, require_columns, require_numeric_finite

PSI_EPSILON = 1e-4
DEFAULT_DRIFT_COLUMNS: tuple[str, ...] = (*FEATURE_COLUMNS, PREDICTION_COLUMN)


def _finite_values(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype="float64").ravel()
    if array.size == 0:
        raise ValueError(f"{name} must not be empty")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite: {int((~np.isfinite(array)).sum())} null or infinite value(s)")
    return array


def psi_bin_edges(reference, bins: int = 10) -> np.ndarray:
    """Interior bin edges of :func:`psi`: the reference's quantiles at ``1/bins, ..., (bins-1)/bins``.

    Quantiles are taken with ``method="inverted_cdf"``, so every edge is a value of the reference, and
    repeated edges (ties) are merged: a column that is 0 for 70 % of the reference gets one bin holding
    exactly the zeros.
    """
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
        raise ValueError(f"bins must be an integer >= 2, got {bins!r}")
    values = _finite_values(reference, "reference")
    levels = np.arange(1, bins) / bins
    return np.unique(np.quantile(values, levels, method="inverted_cdf"))


def psi_bin_shares(reference, current, bins: int = 10, epsilon: float = PSI_EPSILON) -> tuple[np.ndarray, np.ndarray]:
    """Shares of ``reference`` and ``current`` in the bins of :func:`psi`, empty bins set to ``epsilon``."""
    ref = _finite_values(reference, "reference")
    cur = _finite_values(current, "current")
    edges = psi_bin_edges(ref, bins)
    # side="left": bin i holds edges[i-1] < x <= edges[i]; the last bin is everything above the top edge.
    n_bins = edges.size + 1
    ref_share = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=n_bins) / ref.size
    cur_share = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=n_bins) / cur.size
    return np.maximum(ref_share, epsilon), np.maximum(cur_share, epsilon)


def psi(reference, current, bins: int = 10, *, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of ``current`` against ``reference``.

    ``PSI = sum_i (c_i - r_i) * ln(c_i / r_i)`` over bins ``i``, with ``r_i`` and ``c_i`` the shares of
    the reference and current values in the bin.

    Binning: ``bins`` quantile bins of the reference (deciles by default), right-closed, with tied edges
    merged (see :func:`psi_bin_edges`); the lowest bin is open below and the highest open above, so
    current values outside the reference range are counted. The bins depend on the reference only, so
    the same reference gives comparable numbers day after day.

    Empty bins: a share of 0 is replaced by ``epsilon`` (1e-4, Evidently's usual value) without
    renormalising, so a bin empty on both sides contributes exactly 0 and one empty on one side
    contributes at most about ``share * ln(share / 1e-4)``.

    Rules of thumb: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 major shift.

    Examples
    --------
    >>> reference = [0] * 50 + [1] * 30 + [2] * 20
    >>> current = [0] * 30 + [1] * 30 + [2] * 40
    >>> round(psi(reference, current), 4)  # (0.3-0.5)ln(0.3/0.5) + (0.4-0.2)ln(0.4/0.2)
    0.2408
    """
    if not 0 < epsilon < 1:
        raise ValueError(f"epsilon must be in (0, 1), got {epsilon}")
    ref_share, cur_share = psi_bin_shares(reference, current, bins, epsilon)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


@dataclass
class DriftResult:
    """Drift of each column between a reference and a current frame.

    Attributes
    ----------
    psi
        The platform's :func:`psi` per column (decile bins of the reference). Use this one for alerts
        and metadata.
    evidently_psi
        Evidently's PSI per column, as shown in its HTML report (equal-width Sturges bins; see the module
        docstring for where it differs).
    snapshot
        The Evidently snapshot; :meth:`save_html` writes it.
    html_path
        Where :meth:`save_html` last wrote the report, if it did.
    """

    psi: dict[str, float]
    evidently_psi: dict[str, float]
    snapshot: Any = field(repr=False)
    html_path: Path | None = None

    def save_html(self, path: str | Path) -> Path:
        """Write Evidently's self-contained HTML report (about 4 MB) to ``path``, creating parent folders."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        self.snapshot.save_html(str(target))
        self.html_path = target
        return target

    def table(self) -> pd.DataFrame:
        """One row per column: ``psi`` and ``evidently_psi``, largest ``psi`` first."""
        frame = pd.DataFrame({"psi": self.psi, "evidently_psi": self.evidently_psi})
        frame.index.name = "column"
        return frame.sort_values("psi", ascending=False)


def evidently_psi_values(snapshot: Any) -> dict[str, float]:
    """Per-column PSI from an Evidently 0.7 snapshot of ``ValueDrift(column, method="psi")`` metrics."""
    values: dict[str, float] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith(":ValueDrift") and config.get("method") == "psi":
            values[config["column"]] = float(metric["value"])
    return values


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str] = DEFAULT_DRIFT_COLUMNS,
    *,
    bins: int = 10,
) -> DriftResult:
    """PSI of each of ``columns`` between ``reference`` and ``current``, by :func:`psi` and by Evidently.

    Parameters
    ----------
    reference
        The drift reference, e.g. :func:`clv_platform.ml.registry.load_reference` of the champion:
        features and ``predicted_clv`` on its validation cutoff.
    current
        The same columns now, e.g. the scoring features joined with the champion's scores.
    columns
        Numeric columns to compare; by default the features and ``predicted_clv``.
    bins
        Bins of :func:`psi` (Evidently's PSI ignores it, see the module docstring).

    Returns
    -------
    DriftResult
        ``psi`` (the platform's number), ``evidently_psi`` and the snapshot behind the HTML report.
    """
    columns = list(dict.fromkeys(columns))
    if not columns:
        raise ValueError("columns must name at least one column")
    for name, frame in (("reference", reference), ("current", current)):
        require_columns(frame, columns, frame_name=name)
        if len(frame) == 0:
            raise ValueError(f"{name} must not be empty")
        require_numeric_finite(frame, columns, frame_name=name)

    ours = {column: psi(reference[column], current[column], bins) for column in columns}

    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    # Declared numerical and cast to float: Evidently would read an integer column with at most 10
    # distinct values as categorical.
    definition = DataDefinition(numerical_columns=columns)
    datasets = {
        name: Dataset.from_pandas(frame.loc[:, columns].astype("float64"), data_definition=definition)
        for name, frame in (("reference", reference), ("current", current))
    }
    report = Report([ValueDrift(column=column, method="psi") for column in columns])
    snapshot = report.run(current_data=datasets["current"], reference_data=datasets["reference"])
    return DriftResult(psi=ours, evidently_psi=evidently_psi_values(snapshot), snapshot=snapshot)


def drifted_columns(
    psi: Mapping[str, float],
    threshold: float = 0.25,
    key_columns: Sequence[str] | None = DEFAULT_DRIFT_COLUMNS,
) -> list[str]:
    """Key columns whose PSI is above ``threshold``, largest PSI first.

    Parameters
    ----------
    psi
        Column name to PSI, e.g. :attr:`DriftResult.psi`.
    threshold
        Strictly above it counts as drift (0.25 is the usual "major shift" line).
    key_columns
        The columns that can count as drifted; those absent from ``psi`` are ignored. The default is the
        model's inputs and ``predicted_clv``, so drift in a column the model does not read does not count.
        ``None`` considers every column of ``psi``.

    Examples
    --------
    >>> drifted_columns({"predicted_clv": 0.3, "orders_30d": 0.9, "recency": 0.1})
    ['orders_30d', 'predicted_clv']
    >>> drifted_columns({"predicted_clv": 0.3, "orders_30d": 0.9}, key_columns=["predicted_clv"])
    ['predicted_clv']
    """
    if not math.isfinite(threshold) or threshold < 0:
        raise ValueError(f"threshold must be a finite number >= 0, got {threshold}")
    for column, value in psi.items():
        if value is None or not math.isfinite(float(value)):
            raise ValueError(f"psi of column '{column}' must be a finite number, got {value}")
    candidates = psi if key_columns is None else {c: psi[c] for c in key_columns if c in psi}
    return sorted((c for c, v in candidates.items() if float(v) > threshold), key=lambda c: -float(candidates[c]))
