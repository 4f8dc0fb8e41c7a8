"""Fit the whole ladder on earlier cutoffs and judge every rung on the evaluation cutoff: one call.

What ``ml/model_evaluation`` and ``clv-platform evaluate`` both run. Time-based only: the split is
:func:`clv_platform.ml.evaluate.evaluation_split` (training label windows end by the evaluation cutoff).
When no training cutoff qualifies (the history is too short for supervised training), the two rungs
whose fit reads no label, the heuristic and BG/NBD + Gamma-Gamma, are fitted on the evaluation cutoff's
features alone and judged on its labels; no supervised candidate is proposed and the result says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from clv_platform.ml.estimator import CLVEstimator, horizon_of
from clv_platform.ml.features import CUTOFF_COLUMN, LABEL_COLUMN, validate_feature_frame
from clv_platform.ml.gates import FAIRNESS_METRIC

BASELINES: tuple[str, ...] = ("heuristic", "linear", "btyd")
SUPERVISED: tuple[str, ...] = ("xgboost_tuned", "xgboost")
# Rungs whose fit reads only the features at a cutoff, never the label.
LABEL_FREE: tuple[str, ...] = ("heuristic", "btyd")


@dataclass
class LadderEvaluation:
    """Every rung fitted on the same training cutoffs and scored on the same evaluation cutoff.

    Attributes
    ----------
    train, evaluation
        The training rows and the evaluation rows (one cutoff).
    models
        Rung name -> fitted estimator.
    predictions
        Rung name -> predictions on ``evaluation``, row-aligned.
    metrics
        :func:`~clv_platform.ml.evaluate.metrics_table` plus ``disparate_impact`` (lowest over highest
        slice mean prediction across country and acquisition-channel slices) and ``fairness_ratio``, what
        the fairness gate reads: by default that ratio relative to the actual revenue's (see
        :func:`~clv_platform.ml.metrics.relative_disparate_impact`), else the ratio itself.
    slices
        The :class:`~clv_platform.ml.evaluate.SliceReport`.
    candidate
        The supervised rung proposed as challenger (``xgboost_tuned`` if fitted, else ``xgboost``),
        or ``None``.
    no_candidate_reason
        Why there is no candidate, when there is none.
    actual_fairness_ratio
        The disparate-impact ratio of the actual revenue on the same slices: what a perfect model would
        score, so the fairness floor can be read against it.
    """

    train: pd.DataFrame
    evaluation: pd.DataFrame
    models: dict[str, CLVEstimator]
    predictions: dict[str, np.ndarray]
    metrics: pd.DataFrame
    slices: Any
    candidate: str | None
    no_candidate_reason: str | None = None
    actual_fairness_ratio: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def horizon_days(self) -> int:
        return horizon_of(self.evaluation)

    @property
    def evaluation_cutoff(self) -> str:
        return str(pd.Timestamp(self.evaluation[CUTOFF_COLUMN].iloc[0]).date())

    @property
    def train_cutoffs(self) -> tuple[str, ...]:
        if self.candidate is None and self.no_candidate_reason:
            return ()
        return tuple(str(pd.Timestamp(c).date()) for c in sorted(pd.to_datetime(self.train[CUTOFF_COLUMN]).unique()))

    @property
    def baselines(self) -> list[str]:
        return [name for name in BASELINES if name in self.models]

    def gate_metrics(self, name: str) -> dict[str, float]:
        """The metrics the gates read for ``name``: ``mae``, ``spearman``, ``normalized_gini``, ``fairness_ratio``."""
        row = self.metrics.loc[name]
        return {key: float(row[key]) for key in ("mae", "spearman", "normalized_gini", FAIRNESS_METRIC)}

    def judge(self, name: str, predictions: np.ndarray) -> dict[str, float]:
        """The gate metrics of any other predictions (the current champion's) on the same rows."""
        from clv_platform.ml.evaluate import SLICE_COLUMNS, metrics_table, slice_table

        y = self.evaluation[LABEL_COLUMN].to_numpy(dtype="float64")
        table = metrics_table(y, {name: predictions})
        fairness = slice_table(
            y,
            {name: predictions},
            self.evaluation.loc[:, list(SLICE_COLUMNS)],
            min_slice_size=self.extra.get("min_slice_size", 30),
        ).fairness
        row = table.loc[name]
        return {
            "mae": float(row["mae"]),
            "spearman": float(row["spearman"]),
            "normalized_gini": float(row["normalized_gini"]),
            FAIRNESS_METRIC: float(
                fairness.loc[name, _gate_fairness_column(self.extra.get("fairness_relative_to_actual", True))]
            ),
        }


def evaluate_ladder(
    examples: pd.DataFrame,
    *,
    eval_cutoff: str | None = None,
    train_window_cutoffs: int | None = None,
    tune: bool = False,
    tune_options: Mapping[str, Any] | None = None,
    min_slice_size: int = 30,
    fairness_relative_to_actual: bool = True,
) -> LadderEvaluation:
    """Fit every rung on the cutoffs before ``eval_cutoff`` and judge them all on it.

    Parameters
    ----------
    examples
        ``marts.training_examples`` with ``country`` and ``acquisition_channel`` for the slices.
    eval_cutoff
        The evaluation cutoff, a cutoff of ``examples``; the latest by default.
    train_window_cutoffs
        Train on at most this many latest eligible cutoffs (the stateless sliding window); all by default.
    tune
        Also fit ``xgboost_tuned`` (bounded Optuna search over time folds of the training rows).
    min_slice_size
        Slices smaller than this are left out of the disparate-impact ratio.
    fairness_relative_to_actual
        The ``fairness_ratio`` the gate reads: the disparate-impact ratio relative to the actual
        revenue's (default), or the plain ratio (``False``, which a perfect model fails wherever slices
        really spend differently).
    """
    from clv_platform.ml.evaluate import SLICE_COLUMNS, evaluation_split, metrics_table, slice_table
    from clv_platform.ml.train import fit_ladder

    validate_feature_frame(examples, require_label=True)
    no_candidate_reason = None
    try:
        train, evaluation = evaluation_split(examples, eval_cutoff=eval_cutoff, train_window_cutoffs=train_window_cutoffs)
    except ValueError as error:
        if "history is too short" not in str(error):
            raise
        _, evaluation = _evaluation_only(examples, eval_cutoff)
        train, no_candidate_reason = evaluation, f"history too short for supervised training ({error})"

    if no_candidate_reason is None:
        models = fit_ladder(train, tune=tune, tune_options=tune_options)
    else:
        from clv_platform.ml.baselines import BTYDModel, HeuristicModel

        # Fitted on the evaluation cutoff's features; their fit never reads the label.
        models = {"heuristic": HeuristicModel().fit(evaluation), "btyd": BTYDModel().fit(evaluation)}
    predictions = {name: np.asarray(model.predict(evaluation), dtype="float64") for name, model in models.items()}
    y = evaluation[LABEL_COLUMN].to_numpy(dtype="float64")
    metrics = metrics_table(y, predictions)
    slices = slice_table(y, predictions, evaluation.loc[:, list(SLICE_COLUMNS)], min_slice_size=min_slice_size)
    metrics["disparate_impact"] = slices.fairness["disparate_impact_ratio"].reindex(metrics.index)
    metrics[FAIRNESS_METRIC] = slices.fairness[_gate_fairness_column(fairness_relative_to_actual)].reindex(metrics.index)
    actual = slice_table(y, {"actual": y}, evaluation.loc[:, list(SLICE_COLUMNS)], min_slice_size=min_slice_size)
    candidate = next((name for name in SUPERVISED if name in models), None)
    return LadderEvaluation(
        train=train,
        evaluation=evaluation,
        models=models,
        predictions=predictions,
        metrics=metrics,
        slices=slices,
        candidate=candidate,
        no_candidate_reason=no_candidate_reason,
        actual_fairness_ratio=float(actual.fairness.loc["actual", "disparate_impact_ratio"]),
        extra={"min_slice_size": min_slice_size, "fairness_relative_to_actual": fairness_relative_to_actual},
    )


def _gate_fairness_column(relative: bool) -> str:
    return "relative_ratio" if relative else "disparate_impact_ratio"


def _evaluation_only(examples: pd.DataFrame, eval_cutoff: str | None) -> tuple[None, pd.DataFrame]:
    cutoffs = pd.to_datetime(examples[CUTOFF_COLUMN])
    chosen = cutoffs.max() if eval_cutoff is None else pd.Timestamp(eval_cutoff)
    evaluation = examples.loc[(cutoffs == chosen).to_numpy()].sort_values("customer_id").reset_index(drop=True)
    if evaluation.empty:
        raise ValueError(f"eval_cutoff {chosen.date()} is not a '{CUTOFF_COLUMN}' of examples")
    return None, evaluation
