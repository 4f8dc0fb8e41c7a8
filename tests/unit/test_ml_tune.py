"""Time folds never leak labels; the optuna search is bounded and reproducible with a seed."""

import pandas as pd
import pytest

from clv_platform.ml.synthetic import make_examples
from clv_platform.ml.tune import time_folds, tune_xgboost

CUTOFFS = ("2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01", "2024-05-01", "2024-06-01")


@pytest.fixture(scope="module")
def examples():
    return make_examples(n_customers=200, cutoffs=CUTOFFS, horizon_days=60, seed=4)


def test_time_folds_train_only_on_labels_that_end_by_the_validation_cutoff(examples):
    folds = time_folds(examples, n_folds=3)
    assert [pd.Timestamp(v["cutoff_date"].iloc[0]) for _, v in folds] == [pd.Timestamp(c) for c in CUTOFFS[3:]]
    for train, valid in folds:
        valid_cutoff = pd.Timestamp(valid["cutoff_date"].iloc[0])
        assert valid["cutoff_date"].nunique() == 1
        label_end = pd.to_datetime(train["cutoff_date"]) + pd.to_timedelta(train["horizon_days"], unit="D")
        assert (label_end <= valid_cutoff).all()
    # 60-day horizon: 2024-04-01 is validated by cutoffs ending by it: Jan 1 (+60 = Mar 1) and Feb 1
    # (+60 = Apr 1); Mar 1 (+60 = Apr 30) would leak April's revenue.
    first_train = folds[0][0]
    assert sorted(pd.to_datetime(first_train["cutoff_date"]).dt.strftime("%m-%d").unique()) == ["01-01", "02-01"]


def test_time_folds_need_history(examples):
    with pytest.raises(ValueError, match="time folds need a longer history"):
        time_folds(examples.assign(horizon_days=400))
    with pytest.raises(ValueError, match="n_folds must be >= 1"):
        time_folds(examples, n_folds=0)


def test_tuning_is_bounded_and_reproducible(examples):
    base = {"n_estimators": 60, "early_stopping_rounds": 10}
    first = tune_xgboost(examples, n_trials=3, timeout_seconds=None, seed=11, base_params=base)
    again = tune_xgboost(examples, n_trials=3, timeout_seconds=None, seed=11, base_params=base)
    assert len(first.trials) == 3
    pd.testing.assert_frame_equal(first.trials, again.trials)
    assert first.params == again.params and first.objective == again.objective
    assert first.value == pytest.approx(first.trials["mean_fold_mae"].min())
    assert first.params.n_estimators == 60 and 2 <= first.params.max_depth <= 7
