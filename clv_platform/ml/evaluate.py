"""Time-based evaluation of every model side by side, overall and by slice.

A model is judged on a cutoff it has never seen: :func:`evaluation_split` takes the evaluation cutoff
(the latest by default; every cutoff in ``marts.training_examples`` has a complete label window) and
trains only on cutoffs whose label window ``cutoff + horizon_days`` ends by it, so no training label
holds revenue from the evaluation period. :func:`metrics_table` and :func:`slice_table` put the
predictions of every model on that cutoff side by side.

Examples
--------
>>> from clv_platform.ml.synthetic import make_examples
>>> examples = make_examples(50, cutoffs=("2024-01-01", "2024-04-01", "2024-07-01"), horizon_days=90)
>>> train, evaluation = evaluation_split(examples)
>>> sorted(str(c) for c in train["cutoff_date"].unique()), str(evaluation["cutoff_date"].iloc[0])
(['2024-01-01', '2024-04-01'], '2024-07-01')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from clv_platform.ml.features import CUTOFF_COLUMN, HORIZON_COLUMN, ID_COLUMN, require_columns
from clv_platform.ml.metrics import (
    DisparateImpact,
    aggregate_bias,
    disparate_impact_ratio,
    mae,
    normalized_gini,
    relative_disparate_impact,
    rmse,
    spearman,
    top_share_capture,
)

SLICE_COLUMNS: tuple[str, ...] = ("country", "acquisition_channel")
MISSING_SLICE = "(missing)"


def evaluation_split(
    examples: pd.DataFrame,
    *,
    eval_cutoff=None,
    train_window_cutoffs: int | None = None,
    train_window_days: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split training examples into the training cutoffs and the one evaluation cutoff.

    Parameters
    ----------
    examples
        ``marts.training_examples``: one row per customer per ``cutoff_date``, with ``horizon_days``.
    eval_cutoff
        The evaluation cutoff (a date or ISO string present in ``examples``); the latest cutoff by default.
    train_window_cutoffs
        Keep only the latest this many eligible training cutoffs: the stateless sliding window of
        retraining. Exclusive with ``train_window_days``.
    train_window_days
        Keep only eligible training cutoffs at most this many days before the evaluation cutoff.

    Returns
    -------
    (train, evaluation)
        Copies of the rows, sorted by ``cutoff_date`` then ``customer_id``. ``train`` holds the cutoffs
        before the evaluation cutoff whose label window (``cutoff_date + horizon_days``) ends by it.

    Raises
    ------
    ValueError
        Naming the rule: a column is missing or null, ``eval_cutoff`` is not a cutoff of ``examples``, the
        window arguments are both given or not positive, or no training cutoff is left.
    """
    require_columns(examples, [CUTOFF_COLUMN, HORIZON_COLUMN], frame_name="examples")
    if train_window_cutoffs is not None and train_window_days is not None:
        raise ValueError("give train_window_cutoffs or train_window_days, not both")
    for name, value in (("train_window_cutoffs", train_window_cutoffs), ("train_window_days", train_window_days)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    cutoffs = pd.to_datetime(examples[CUTOFF_COLUMN])
    horizons = pd.to_numeric(examples[HORIZON_COLUMN], errors="coerce")
    for column, values in ((CUTOFF_COLUMN, cutoffs), (HORIZON_COLUMN, horizons)):
        if values.isna().any():
            raise ValueError(f"examples column '{column}' must not be null: {int(values.isna().sum())} null value(s)")
    if len(examples) == 0:
        raise ValueError("examples must not be empty")

    distinct = pd.DatetimeIndex(np.sort(cutoffs.unique()))
    if eval_cutoff is None:
        evaluation_cutoff = distinct[-1]
    else:
        evaluation_cutoff = pd.Timestamp(eval_cutoff)
        if evaluation_cutoff not in distinct:
            raise ValueError(
                f"eval_cutoff {evaluation_cutoff.date()} is not a '{CUTOFF_COLUMN}' of examples; "
                f"they are {[str(c.date()) for c in distinct]}"
            )

    label_end = cutoffs + pd.to_timedelta(horizons, unit="D")
    eligible = (cutoffs < evaluation_cutoff) & (label_end <= evaluation_cutoff)
    if train_window_cutoffs is not None:
        kept = pd.DatetimeIndex(np.sort(cutoffs[eligible].unique()))[-train_window_cutoffs:]
        eligible &= cutoffs.isin(kept)
    if train_window_days is not None:
        eligible &= cutoffs >= evaluation_cutoff - pd.Timedelta(days=train_window_days)
    if not eligible.any():
        window = f" within the window of {train_window_days} days" if train_window_days is not None else ""
        raise ValueError(
            f"no training cutoff before the evaluation cutoff {evaluation_cutoff.date()} has its "
            f"'{HORIZON_COLUMN}' label window end by it{window}: the history is too short for supervised "
            f"training (cutoffs: {[str(c.date()) for c in distinct]})"
        )

    sort_by = [CUTOFF_COLUMN] + ([ID_COLUMN] if ID_COLUMN in examples.columns else [])
    train = examples.loc[eligible.to_numpy()].sort_values(sort_by).reset_index(drop=True)
    evaluation = examples.loc[(cutoffs == evaluation_cutoff).to_numpy()].sort_values(sort_by).reset_index(drop=True)
    return train, evaluation


def _capture_name(top_share: float) -> str:
    """Column name of the top-share capture, e.g. ``top10_capture`` for 0.1."""
    return f"top{round(top_share * 100):g}_capture"


def _model_metrics(y_true: np.ndarray, y_pred: np.ndarray, top_share: float) -> dict[str, float]:
    return {
        "rmse": rmse(y_true, y_pred),
        "mae": mae(y_true, y_pred),
        "spearman": spearman(y_true, y_pred),
        "normalized_gini": normalized_gini(y_true, y_pred),
        _capture_name(top_share): top_share_capture(y_true, y_pred, top_share),
        "bias": aggregate_bias(y_true, y_pred),
    }


def _checked_predictions(y_true, predictions: Mapping[str, object]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    if not predictions:
        raise ValueError("predictions must name at least one model")
    true = np.asarray(y_true, dtype="float64").ravel()
    arrays = {}
    for name, values in predictions.items():
        array = np.asarray(values, dtype="float64").ravel()
        if array.shape != true.shape:
            raise ValueError(f"predictions of model '{name}' have {array.size} rows, y_true has {true.size}")
        arrays[str(name)] = array
    return true, arrays


def metrics_table(y_true, predictions: Mapping[str, object], *, top_share: float = 0.1) -> pd.DataFrame:
    """Every model's metrics on the same rows, one row per model in the order given.

    Parameters
    ----------
    y_true
        Actual revenue over the horizon.
    predictions
        Model name -> its predictions, row-aligned with ``y_true``.
    top_share
        The share of customers of the capture column (``top10_capture`` for 0.1).

    Returns
    -------
    pandas.DataFrame
        Index ``model``; columns ``rmse``, ``mae``, ``spearman``, ``normalized_gini``,
        ``top10_capture``, ``bias`` (see :mod:`clv_platform.ml.metrics`).

    Examples
    --------
    >>> table = metrics_table([0, 10, 30], {"perfect": [0, 10, 30], "flat": [10, 10, 10]})
    >>> table.index.tolist(), table.loc["flat", ["mae", "bias"]].tolist()
    (['perfect', 'flat'], [10.0, -0.25])
    """
    true, arrays = _checked_predictions(y_true, predictions)
    rows = [{"model": name, **_model_metrics(true, pred, top_share)} for name, pred in arrays.items()]
    return pd.DataFrame(rows).set_index("model")


@dataclass(frozen=True)
class SliceReport:
    """Per-slice metrics and the fairness of every model across slices.

    Attributes
    ----------
    metrics
        One row per model, dimension (``country``, ``acquisition_channel``) and slice: ``n``,
        ``mean_actual``, ``mean_predicted``, the columns of :func:`metrics_table`, and ``in_ratio``
        (whether the slice was large enough to count in the disparate-impact ratio).
    fairness
        Index ``model``: the disparate-impact ratio per dimension (``<dimension>_ratio``, with the lowest
        and highest slice) and ``disparate_impact_ratio``, the lowest over the dimensions; the same ratio
        relative to the actual revenue's (``<dimension>_relative``: the model's ratio over the actual
        revenue's, capped at 1) and ``relative_ratio``, the lowest of those. The relative ratio is 1 for
        a perfect model and falls below 1 only where the model widens the gap between slices beyond the
        gap in what the customers really spent.
    details
        ``(model, dimension)`` -> the :class:`~clv_platform.ml.metrics.DisparateImpact` behind it,
        with the slices excluded for size.
    """

    metrics: pd.DataFrame
    fairness: pd.DataFrame
    details: dict[tuple[str, str], DisparateImpact]


def slice_table(
    y_true,
    predictions: Mapping[str, object],
    slices: pd.DataFrame,
    *,
    dimensions: Sequence[str] = SLICE_COLUMNS,
    min_slice_size: int = 30,
    top_share: float = 0.1,
) -> SliceReport:
    """Every model's metrics within each slice, and its disparate-impact ratio of mean prediction.

    Parameters
    ----------
    y_true, predictions
        As for :func:`metrics_table`.
    slices
        Row-aligned with ``y_true``, with a string column per dimension. Nulls become the slice
        ``(missing)``.
    dimensions
        The columns of ``slices`` to slice by.
    min_slice_size
        Slices smaller than this are reported but left out of the ratio (their mean is noise).

    Returns
    -------
    SliceReport
    """
    true, arrays = _checked_predictions(y_true, predictions)
    require_columns(slices, dimensions, frame_name="slices")
    if len(slices) != true.size:
        raise ValueError(f"slices has {len(slices)} rows, y_true has {true.size}")

    slice_groups = {
        dimension: slices[dimension].astype("object").where(slices[dimension].notna(), MISSING_SLICE).astype(str)
        for dimension in dimensions
    }
    # What a perfect model would score: labels are floored at 0, so the actual revenue has a ratio too.
    actual = {d: disparate_impact_ratio(true, g.to_numpy(), min_size=min_slice_size).ratio for d, g in slice_groups.items()}
    rows, fairness_rows, details = [], [], {}
    for model, pred in arrays.items():
        fairness = {"model": model}
        for dimension, groups in slice_groups.items():
            impact = disparate_impact_ratio(pred, groups.to_numpy(), min_size=min_slice_size)
            details[(model, dimension)] = impact
            fairness |= {
                f"{dimension}_ratio": impact.ratio,
                f"{dimension}_lowest": impact.lowest,
                f"{dimension}_highest": impact.highest,
                f"{dimension}_relative": relative_disparate_impact(impact.ratio, actual[dimension]),
            }
            for value, index in groups.groupby(groups, sort=True).indices.items():
                slice_true, slice_pred = true[index], pred[index]
                rows.append(
                    {
                        "model": model,
                        "dimension": dimension,
                        "slice": value,
                        "n": index.size,
                        "mean_actual": float(slice_true.mean()),
                        "mean_predicted": float(slice_pred.mean()),
                        **_model_metrics(slice_true, slice_pred, top_share),
                        "in_ratio": value in impact.slice_means,
                    }
                )
        for column, suffix in (("disparate_impact_ratio", "ratio"), ("relative_ratio", "relative")):
            ratios = [fairness[f"{dimension}_{suffix}"] for dimension in dimensions]
            fairness[column] = float(np.nanmin(ratios)) if not np.isnan(ratios).all() else float("nan")
        fairness_rows.append(fairness)
    return SliceReport(
        metrics=pd.DataFrame(rows),
        fairness=pd.DataFrame(fairness_rows).set_index("model"),
        details=details,
    )
