"""Time split and the XGBoost regressor on synthetic examples with a known signal."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from clv_platform.ml.features import FEATURE_COLUMNS, LABEL_COLUMN
from clv_platform.ml.metrics import rmse
from clv_platform.ml.synthetic import make_examples
from clv_platform.ml.train import XGBParams, compare_objectives, fit_clv_model, time_split

FAST = {"n_estimators": 150, "learning_rate": 0.1, "early_stopping_rounds": 20}


@pytest.fixture(scope="module")
def examples():
    return make_examples(n_customers=500, cutoffs=("2024-01-01", "2024-04-01", "2024-07-01"), seed=1)


@pytest.fixture(scope="module")
def split(examples):
    return time_split(examples)


@pytest.fixture(scope="module")
def trained(split):
    return fit_clv_model(*split, FAST)


def test_time_split_validates_on_the_latest_cutoff(examples, split):
    train, valid = split
    assert set(pd.to_datetime(valid["cutoff_date"])) == {pd.Timestamp("2024-07-01")}
    assert set(pd.to_datetime(train["cutoff_date"])) == {pd.Timestamp("2024-01-01"), pd.Timestamp("2024-04-01")}
    assert len(train) + len(valid) == len(examples)


def test_time_split_needs_two_cutoffs():
    one = make_examples(n_customers=10, cutoffs=("2024-01-01",))
    with pytest.raises(ValueError, match="at least 2 distinct cutoffs"):
        time_split(one)


def test_time_split_can_purge_labels_that_overlap_the_validation_period(examples):
    # 90-day horizon: 2024-04-01 + 90 days = 2024-06-30 <= 2024-07-01 is kept; with a 120-day horizon it is not.
    train, _ = time_split(examples, purge_overlapping_labels=True)
    assert train["cutoff_date"].nunique() == 2
    longer = examples.assign(horizon_days=120)
    train, _ = time_split(longer, purge_overlapping_labels=True)
    assert set(pd.to_datetime(train["cutoff_date"])) == {pd.Timestamp("2024-01-01")}
    with pytest.raises(ValueError, match="no training cutoff"):
        time_split(examples.assign(horizon_days=400), purge_overlapping_labels=True)


def test_model_learns_the_signal(split, trained):
    train, valid = split
    mean_baseline = rmse(valid[LABEL_COLUMN], np.full(len(valid), train[LABEL_COLUMN].mean()))
    assert trained.metrics["rmse"] < 0.9 * mean_baseline
    assert trained.metrics["normalized_gini"] > 0.6
    assert set(trained.metrics) == {"rmse", "mae", "normalized_gini"}


def test_validation_predictions_are_aligned_and_non_negative(split, trained):
    _, valid = split
    assert trained.valid_predictions.shape == (len(valid),)
    assert (trained.valid_predictions >= 0).all()
    np.testing.assert_allclose(trained.predict(valid), trained.valid_predictions)
    assert trained.feature_columns == FEATURE_COLUMNS
    assert trained.valid_cutoff == pd.Timestamp("2024-07-01")
    assert trained.best_iteration is not None and trained.best_iteration < FAST["n_estimators"]


def test_fitting_is_deterministic(split, trained):
    again = fit_clv_model(*split, XGBParams(**FAST))
    np.testing.assert_array_equal(again.valid_predictions, trained.valid_predictions)


def test_params_reject_unknown_keys_and_keep_defaults():
    params = XGBParams.from_mapping({"max_depth": 3})
    assert params.max_depth == 3 and params.objective == "reg:squarederror" and params.n_jobs == 2
    assert "tweedie_variance_power" not in params.estimator_kwargs()
    assert "tweedie_variance_power" in dataclasses.replace(params, objective="reg:tweedie").estimator_kwargs()
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['max_dept'\]"):
        XGBParams.from_mapping({"max_dept": 3})


def test_fit_rejects_a_frame_that_breaks_the_contract(split):
    train, valid = split
    with pytest.raises(ValueError, match="valid: .*'future_revenue'"):
        fit_clv_model(train, valid.drop(columns=[LABEL_COLUMN]), FAST)


def test_compare_objectives_reports_each_objective(split):
    table = compare_objectives(*split, params={**FAST, "n_estimators": 40})
    assert list(table["objective"]) == ["reg:squarederror", "reg:tweedie"]
    assert table[["rmse", "mae", "normalized_gini"]].notna().all().all()
