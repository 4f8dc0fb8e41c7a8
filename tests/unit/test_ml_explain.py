"""Top drivers, global importance and batched XGBoost contributions."""

import functools
import math

import numpy as np
import pandas as pd
import pytest

from clv_platform.ml.explain import (
    explain_top_drivers,
    global_importance,
    top_drivers,
    xgb_contributions,
)
from clv_platform.ml.features import FEATURE_COLUMNS, LABEL_COLUMN
from clv_platform.ml.synthetic import make_examples


@pytest.fixture(scope="module")
def fitted():
    """A small early-stopped regressor on the feature contract, and rows to explain."""
    import xgboost as xgb

    examples = make_examples(600, cutoffs=("2024-01-01", "2024-04-01"), seed=5)
    train, valid = examples.iloc[:600], examples.iloc[600:]
    model = xgb.XGBRegressor(
        n_estimators=400, max_depth=3, learning_rate=0.3, early_stopping_rounds=5, n_jobs=1, random_state=0
    )
    model.fit(
        train[list(FEATURE_COLUMNS)], train[LABEL_COLUMN], eval_set=[(valid[list(FEATURE_COLUMNS)], valid[LABEL_COLUMN])], verbose=False
    )
    assert model.best_iteration + 1 < model.get_booster().num_boosted_rounds(), "the test needs unused trees"
    rows = valid.set_index(pd.RangeIndex(1000, 1000 + len(valid)))
    return model, rows


def test_top_drivers_by_hand():
    frame = pd.DataFrame(
        {
            "spend_365d": [412.4, 0.0, 5.0],
            "recency": [-130.0, 0.0, -5.0],
            "orders_90d": [20.0, 0.0, 0.04],
            "bias": [900.0, 900.0, 900.0],
        },
        index=["c1", "c2", "c3"],
    )
    drivers = top_drivers(frame, k=2)
    assert drivers.index.tolist() == ["c1", "c2", "c3"]
    assert drivers.loc["c1", "drivers"] == "spend_365d +412, recency -130"
    assert drivers.loc["c1", "driver_2"] == "recency"
    assert drivers.loc["c1", "driver_2_contribution"] == -130.0
    # nothing contributes: no driver, and the large bias is never one
    assert drivers.loc["c2", "drivers"] == ""
    assert drivers.loc["c2", "driver_1"] is None and math.isnan(drivers.loc["c2", "driver_1_contribution"])
    # |+5| and |-5| tie: the column order decides
    assert drivers.loc["c3", "drivers"] == "spend_365d +5.0, recency -5.0"


def test_top_drivers_k_larger_than_the_features_gives_every_feature():
    frame = pd.DataFrame({"a": [-0.25], "b": [1.5], "bias": [0.0]})
    drivers = top_drivers(frame, k=5)
    assert drivers.columns.tolist() == ["driver_1", "driver_1_contribution", "driver_2", "driver_2_contribution", "drivers"]
    assert drivers.loc[0, "drivers"] == "b +1.5, a -0.25"


@pytest.mark.parametrize(
    ("frame", "k", "message"),
    [
        (pd.DataFrame({"a": [1.0]}), 1, r"missing required column\(s\) \['bias'\]"),
        (pd.DataFrame({"bias": [1.0]}), 1, "at least one feature column"),
        (pd.DataFrame({"a": [np.nan], "bias": [1.0]}), 1, "column 'a' must be finite"),
        (pd.DataFrame({"a": [1.0], "bias": [1.0]}), 0, "k must be a positive integer"),
    ],
)
def test_top_drivers_rejects_bad_input(frame, k, message):
    with pytest.raises(ValueError, match=message):
        top_drivers(frame, k=k)


def test_global_importance_by_hand():
    # a: |1|, |-3|, |2| -> mean 2; b: 0.5 each -> 0.5; c: |-4|, 0, 0 -> 4/3
    frame = pd.DataFrame({"a": [1.0, -3.0, 2.0], "b": [0.5, -0.5, 0.5], "c": [-4.0, 0.0, 0.0], "bias": [7.0] * 3})
    importance = global_importance(frame)
    assert importance.index.tolist() == ["a", "c", "b"]
    assert importance.tolist() == pytest.approx([2.0, 4 / 3, 0.5])
    assert importance.name == "mean_abs_contribution"


def test_xgb_contributions_sum_to_the_margin_of_the_best_iteration(fitted):
    model, rows = fitted
    margin = model.predict(rows[list(FEATURE_COLUMNS)], output_margin=True)
    for approx in (False, True):
        contributions = xgb_contributions(model, rows, approx=approx)
        assert contributions.columns.tolist() == [*FEATURE_COLUMNS, "bias"]
        assert contributions.index.equals(rows.index)
        np.testing.assert_allclose(contributions.sum(axis=1), margin, rtol=1e-4, atol=1e-2)
    # the booster alone gives the same
    pd.testing.assert_frame_equal(xgb_contributions(model.get_booster(), rows), xgb_contributions(model, rows))


def test_xgb_contributions_do_not_depend_on_the_batch_size(fitted):
    model, rows = fitted
    whole = xgb_contributions(model, rows, batch_size=10_000)
    pd.testing.assert_frame_equal(xgb_contributions(model, rows, batch_size=77), whole)


def test_exact_and_approx_contributions_differ(fitted):
    # Saabas and SHAP agree on the sum, not on the split between features
    model, rows = fitted
    exact = xgb_contributions(model, rows.iloc[:50])
    approx = xgb_contributions(model, rows.iloc[:50], approx=True)
    assert not np.allclose(exact.to_numpy(), approx.to_numpy())


def test_xgb_contributions_reject_bad_input(fitted):
    model, rows = fitted
    with pytest.raises(ValueError, match=r"missing required column\(s\) \['frequency'\]"):
        xgb_contributions(model, rows.drop(columns="frequency"))
    broken = rows.copy()
    broken.loc[broken.index[3], "recency"] = np.nan
    with pytest.raises(ValueError, match="column 'recency' must be finite"):
        xgb_contributions(model, broken)
    with pytest.raises(ValueError, match="features must not be empty"):
        xgb_contributions(model, rows.iloc[:0])
    with pytest.raises(ValueError, match="must be an xgboost Booster"):
        xgb_contributions(object(), rows)


def test_explain_top_drivers_in_batches_equals_all_at_once(fitted):
    model, rows = fitted
    explainer = functools.partial(xgb_contributions, model, approx=True)
    batched = explain_top_drivers(explainer, rows, k=3, batch_size=64)
    pd.testing.assert_frame_equal(batched, top_drivers(xgb_contributions(model, rows, approx=True), k=3))
    assert batched.index.equals(rows.index)
    assert batched["driver_1"].isin(FEATURE_COLUMNS).all()


class _NoContributions:
    name = "btyd"

    def contributions(self, features):
        return None


def test_explain_top_drivers_says_when_a_model_has_no_contributions(fitted):
    _, rows = fitted
    with pytest.raises(ValueError, match="the btyd model has no per-feature contributions"):
        explain_top_drivers(_NoContributions(), rows)
