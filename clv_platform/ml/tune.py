"""Bounded hyper-parameter search for the XGBoost rung over time-based folds (optuna).

Fold ``k`` validates on cutoff ``c_k`` and trains on every cutoff whose label window
(``cutoff_date + horizon_days``) ends by ``c_k``, so no training label overlaps the validation period. The
search minimises the mean over folds of the validation MAE (the metric the objective choice of
:class:`~clv_platform.ml.train.XGBoostModel` also uses; Spearman and normalized Gini are rank metrics a
scale change does not move, MAE punishes both bad ranking and bad scale). Early stopping inside each fold
watches the same validation cutoff, so fold scores are slightly optimistic, equally for every trial.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from clv_platform.ml.features import CUTOFF_COLUMN, HORIZON_COLUMN, LABEL_COLUMN, require_columns
from clv_platform.ml.metrics import mae
from clv_platform.ml.train import OBJECTIVES, XGBoostModel, XGBParams


def time_folds(examples: pd.DataFrame, n_folds: int = 3) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """Up to ``n_folds`` (train, valid) pairs over the latest cutoffs, oldest fold first.

    A cutoff can validate only if at least one earlier cutoff's label window ends by it.

    Raises
    ------
    ValueError
        If ``n_folds < 1`` or no cutoff has such an earlier cutoff.
    """
    if n_folds < 1:
        raise ValueError(f"n_folds must be >= 1, got {n_folds}")
    require_columns(examples, [CUTOFF_COLUMN, HORIZON_COLUMN], frame_name="examples")
    cutoffs = pd.to_datetime(examples[CUTOFF_COLUMN])
    label_end = cutoffs + pd.to_timedelta(examples[HORIZON_COLUMN], unit="D")
    folds = []
    for cutoff in np.sort(cutoffs.unique())[::-1]:
        train_mask = (label_end <= cutoff).to_numpy()
        if not train_mask.any():
            continue
        folds.append(
            (examples.loc[train_mask].reset_index(drop=True), examples.loc[(cutoffs == cutoff).to_numpy()].reset_index(drop=True))
        )
        if len(folds) == n_folds:
            break
    if not folds:
        raise ValueError(
            f"no cutoff in examples column '{CUTOFF_COLUMN}' has an earlier cutoff whose '{HORIZON_COLUMN}' label "
            "window ends by it: time folds need a longer history"
        )
    return folds[::-1]


@dataclass(frozen=True)
class TuneResult:
    """The best trial of :func:`tune_xgboost`.

    Attributes
    ----------
    params
        The full :class:`XGBParams` of the best trial (base parameters with the searched ones replaced).
    objective
        Its objective, a key of :data:`~clv_platform.ml.train.OBJECTIVES`.
    value
        Its mean fold MAE.
    trials
        One row per finished trial: number, mean fold MAE and the sampled values.
    """

    params: XGBParams
    objective: str
    value: float
    trials: pd.DataFrame


def tune_xgboost(
    examples: pd.DataFrame,
    *,
    n_trials: int = 20,
    timeout_seconds: float | None = 600.0,
    n_folds: int = 2,
    seed: int = 0,
    base_params: XGBParams | Mapping[str, Any] | None = None,
    stack_btyd: bool = False,
) -> TuneResult:
    """Search depth, learning rate, regularisation, sampling and the objective with a seeded TPE sampler.

    At most ``n_trials`` trials and ``timeout_seconds`` seconds (``None``: no time bound; the bound is
    checked between trials). The same ``seed`` and data give the same trials when the time bound does
    not cut the search short. With ``stack_btyd`` each fold's BTYD model is fitted once, on that fold's
    training rows, and shared by the trials.
    """
    import optuna

    from clv_platform.ml.baselines import BTYDModel

    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    base = XGBParams.from_mapping(base_params)
    folds = time_folds(examples, n_folds)
    btyds = [BTYDModel().fit(train) if stack_btyd else None for train, _ in folds]

    def objective(trial: optuna.Trial) -> float:
        params = dataclasses.replace(
            base,
            max_depth=trial.suggest_int("max_depth", 2, 7),
            learning_rate=trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
            min_child_weight=trial.suggest_float("min_child_weight", 1.0, 100.0, log=True),
            subsample=trial.suggest_float("subsample", 0.5, 1.0),
            colsample_bytree=trial.suggest_float("colsample_bytree", 0.4, 1.0),
            reg_lambda=trial.suggest_float("reg_lambda", 1e-3, 100.0, log=True),
        )
        loss = trial.suggest_categorical("objective", list(OBJECTIVES))
        scores = []
        for (train, valid), btyd in zip(folds, btyds, strict=True):
            model = XGBoostModel(params, objectives=(loss,), stack_btyd=stack_btyd, btyd=btyd).fit(train, valid)
            scores.append(mae(valid[LABEL_COLUMN], model.predict(valid)))
        return float(np.mean(scores))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=n_trials, timeout=timeout_seconds, show_progress_bar=False)
    best = dict(study.best_params)
    loss = best.pop("objective")
    trials = pd.DataFrame(
        [{"number": t.number, "mean_fold_mae": t.value, **t.params} for t in study.trials if t.value is not None]
    )
    return TuneResult(params=dataclasses.replace(base, **best), objective=loss, value=float(study.best_value), trials=trials)
