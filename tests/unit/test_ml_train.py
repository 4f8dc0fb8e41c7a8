"""The XGBoost rung and the inner time split, on synthetic examples with a known signal."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from clv_platform.ml.evaluate import evaluation_split
from clv_platform.ml.features import FEATURE_COLUMNS, LABEL_COLUMN
from clv_platform.ml.metrics import mae, normalized_gini, rmse
from clv_platform.ml.synthetic import make_examples
from clv_platform.ml.train import XGBoostModel, XGBParams, time_split

FAST = {"n_estimators": 150, "learning_rate": 0.1, "early_stopping_rounds": 20}


@pytest.fixture(scope="module")
def examples():
    return make_examples(n_customers=500, cutoffs=("2024-01-01", "2024-04-01", "2024-07-01"), seed=1)


@pytest.fixture(scope="module")
def split(examples):
    # 90-day labels: both earlier cutoffs' windows end by 2024-07-01, so both train.
    train, valid = evaluation_split(examples)
    assert set(pd.to_datetime(train["cutoff_date"])) == {pd.Timestamp("2024-01-01"), pd.Timestamp("2024-04-01")}
    return train, valid


@pytest.fixture(scope="module")
def xgb_model(split):
    return XGBoostModel(FAST).fit(*split)


def test_time_split_validates_on_the_latest_cutoff(examples):
    train, valid = time_split(examples)
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


def test_model_learns_the_signal(split, xgb_model):
    train, valid = split
    predictions = xgb_model.predict(valid)
    mean_baseline = rmse(valid[LABEL_COLUMN], np.full(len(valid), train[LABEL_COLUMN].mean()))
    assert rmse(valid[LABEL_COLUMN], predictions) < 0.9 * mean_baseline
    assert normalized_gini(valid[LABEL_COLUMN], predictions) > 0.6
    assert {"rmse", "mae", "normalized_gini"} <= set(xgb_model.selection_.columns)


def test_predictions_are_aligned_non_negative_and_early_stopped(split, xgb_model):
    _, valid = split
    predictions = xgb_model.predict(valid)
    assert predictions.shape == (len(valid),) and (predictions >= 0).all()
    assert xgb_model.feature_columns == FEATURE_COLUMNS
    chosen = xgb_model.selection_.set_index("objective").loc[xgb_model.objective_]
    assert chosen["best_iteration"] < FAST["n_estimators"]


def test_fitting_is_deterministic(split, xgb_model):
    _, valid = split
    again = XGBoostModel(XGBParams(**FAST)).fit(*split)
    np.testing.assert_array_equal(again.predict(valid), xgb_model.predict(valid))


def test_params_reject_unknown_keys_and_keep_defaults():
    params = XGBParams.from_mapping({"max_depth": 3})
    assert params.max_depth == 3 and params.objective == "reg:squarederror" and params.n_jobs == 2
    assert "tweedie_variance_power" not in params.estimator_kwargs()
    assert "tweedie_variance_power" in dataclasses.replace(params, objective="reg:tweedie").estimator_kwargs()
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['max_dept'\]"):
        XGBParams.from_mapping({"max_dept": 3})


def test_xgboost_chooses_its_objective_by_validation_mae(split, xgb_model):
    _, valid = split
    table = xgb_model.selection_
    assert list(table["objective"]) == ["squared_error", "tweedie", "log1p"]
    assert xgb_model.objective_ == table.loc[table["mae"].idxmin(), "objective"]
    best = table["mae"].min()
    assert mae(valid[LABEL_COLUMN], xgb_model.predict(valid)) == pytest.approx(best)
    by_gini = XGBoostModel(FAST, selection_metric="normalized_gini").fit(*split)
    assert by_gini.objective_ == table.loc[table["normalized_gini"].idxmax(), "objective"]


def test_log1p_smearing_is_duans_estimator_on_a_known_case():
    # One constant feature: the trees can only learn the mean of log1p(y), so every residual is
    # log1p(y_i) - mean(log1p(y)). y + 1 in {1, e^2}, half each: the log mean is 1, residuals are -1 and +1,
    # the smearing factor is (e^-1 + e^1) / 2 = cosh(1), and the prediction exp(1) cosh(1) - 1
    # = (1 + e^2) / 2 - 1 is exactly the mean of y, (0 + e^2 - 1) / 2; without smearing it would be e - 1.
    n = 200
    y = np.where(np.arange(n) % 2 == 0, 0.0, np.e**2 - 1)
    frame = make_examples(n_customers=n, cutoffs=("2024-01-01",), seed=2).assign(future_revenue=y)
    for column in FEATURE_COLUMNS:
        frame[column] = 1.0
    frame["recency"] = 0.0
    params = {
        "n_estimators": 400,
        "learning_rate": 0.3,
        "min_child_weight": 0.0,
        "reg_lambda": 0.0,
        "subsample": 1.0,
        "colsample_bytree": 1.0,
        "early_stopping_rounds": None,
    }
    model = XGBoostModel(params, objectives=("log1p",)).fit(frame)
    assert model.smearing_ == pytest.approx(np.cosh(1.0), rel=1e-4)
    np.testing.assert_allclose(model.predict(frame[:3]), (np.e**2 - 1) / 2, rtol=1e-4)


def test_xgboost_contributions_sum_to_the_margin(split, xgb_model):
    _, valid = split
    contributions = xgb_model.contributions(valid[:50])
    assert list(contributions.columns) == [*FEATURE_COLUMNS, "bias"]
    np.testing.assert_allclose(contributions.sum(axis=1), xgb_model.margin(valid[:50]), rtol=1e-4, atol=1e-3)
    approx = XGBoostModel(FAST, objectives=("squared_error",), approx_contributions=True).fit(*split)
    np.testing.assert_allclose(approx.contributions(valid[:50]).sum(axis=1), approx.margin(valid[:50]), rtol=1e-4, atol=1e-3)


def test_xgboost_without_valid_uses_the_latest_training_cutoff_then_refits(examples):
    model = XGBoostModel(FAST, objectives=("squared_error", "log1p")).fit(examples)
    assert set(model.selection_["objective"]) == {"squared_error", "log1p"}
    assert model.model_.n_estimators == model.selection_.set_index("objective").loc[model.objective_, "best_iteration"] + 1


def test_xgboost_rejects_bad_options_and_frames(split):
    train, valid = split
    with pytest.raises(ValueError, match="objectives must be"):
        XGBoostModel(objectives=("poisson",))
    with pytest.raises(ValueError, match="selection_metric"):
        XGBoostModel(selection_metric="r2")
    with pytest.raises(ValueError, match=r"valid: .*'future_revenue'"):
        XGBoostModel(FAST).fit(train, valid.drop(columns=[LABEL_COLUMN]))
    with pytest.raises(ValueError, match="not fitted"):
        XGBoostModel().predict(valid)
