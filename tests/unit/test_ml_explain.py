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
    model = xgb.XGBRegressor(n_estimators=400, max_depth=3, learning_rate=0.3, early_stopping_rounds=5, n_jobs=1, random_state=0)
    model.fit(
        train[list(FEATURE_COLUMNS)],
        train[LABEL_COLUMN],
        eval_set=[(valid[list(FEATURE_COLUMNS)], valid[LABEL_COLUMN])],
        verbose=False,
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


# explain_customers: any rung, as scoring/clv_explanations runs it ------------------------------------

from clv_platform.ml.explain import explain_customers  # noqa: E402


@pytest.fixture(scope="module")
def examples():
    return make_examples(400, cutoffs=("2024-01-01", "2024-04-01", "2024-07-01"), seed=8)


def _split(examples):
    cutoffs = pd.to_datetime(examples["cutoff_date"])
    return examples[cutoffs < cutoffs.max()], examples[cutoffs == cutoffs.max()].drop(columns=LABEL_COLUMN)


def test_explain_customers_of_an_xgboost_rung_approximate_by_default(examples):
    from clv_platform.ml.train import XGBoostModel

    train, current = _split(examples)
    model = XGBoostModel({"n_estimators": 60, "learning_rate": 0.2}, objectives=("tweedie",)).fit(train)
    explained = explain_customers(model, current, batch_size=97)
    assert explained.index.equals(current.index)
    assert set(explained["method"]) == {"treeshap_approx"} and set(explained["contribution_scale"]) == {"log_revenue"}
    assert model.approx_contributions is False  # the champion itself is not changed
    # The same drivers as the booster's approximate contributions of the whole frame at once.
    expected = top_drivers(xgb_contributions(model.model_, current, approx=True, feature_columns=FEATURE_COLUMNS), k=3)
    pd.testing.assert_frame_equal(explained.drop(columns=["method", "contribution_scale"]), expected, check_dtype=False)
    assert explained["driver_1"].notna().all()

    exact = explain_customers(model, current.iloc[:40], approx=False)
    assert set(exact["method"]) == {"treeshap"}
    pd.testing.assert_frame_equal(
        exact.drop(columns=["method", "contribution_scale"]),
        top_drivers(model.contributions(current.iloc[:40])),
        check_dtype=False,
    )


def test_explain_customers_of_the_linear_rung_by_hand(examples):
    from clv_platform.ml.baselines import LinearModel

    train, current = _split(examples)
    model = LinearModel().fit(train)
    explained = explain_customers(model, current, k=5)
    assert set(explained["method"]) == {"linear_exact"} and set(explained["contribution_scale"]) == {"revenue"}
    # coef * x for a customer with no zero input, largest absolute first; four inputs, so never a fifth driver.
    position = int(np.flatnonzero((current[list(model.feature_columns)] != 0).all(axis=1).to_numpy())[0])
    row = current.iloc[position]
    by_hand = sorted(
        ((c, coef * row[c]) for c, coef in zip(model.feature_columns, model.coef_, strict=True)), key=lambda p: -abs(p[1])
    )
    first = explained.iloc[position]
    assert [first[f"driver_{i}"] for i in range(1, 5)] == [name for name, _ in by_hand]
    assert [first[f"driver_{i}_contribution"] for i in range(1, 5)] == pytest.approx([value for _, value in by_hand])
    assert explained["driver_5"].isna().all() and explained["driver_5_contribution"].isna().all()


def test_explain_customers_says_so_for_a_rung_without_contributions(examples):
    import duckdb

    from clv_platform.ml.baselines import HeuristicModel

    train, current = _split(examples)
    explained = explain_customers(HeuristicModel().fit(train), current)
    assert list(explained.columns) == [
        "driver_1",
        "driver_1_contribution",
        "driver_2",
        "driver_2_contribution",
        "driver_3",
        "driver_3_contribution",
        "drivers",
        "method",
        "contribution_scale",
    ]
    assert set(explained["method"]) == {"none"}
    assert set(explained["drivers"]) == {"no drivers: the heuristic model has no additive per-feature contributions"}
    assert explained[["driver_1", "driver_2", "driver_3", "contribution_scale"]].isna().all().all()
    assert explained[["driver_1_contribution", "driver_3_contribution"]].isna().all().all()
    # Stored, the empty driver names are still text columns that a later cutoff's drivers fit into.
    con = duckdb.connect()
    con.register("explained", explained)
    types = {row[0]: row[1] for row in con.execute("describe explained").fetchall()}
    assert types["driver_1"] == types["contribution_scale"] == "VARCHAR" and types["driver_1_contribution"] == "DOUBLE"


def test_explain_customers_rejects_bad_input(examples):
    from clv_platform.ml.baselines import LinearModel

    train, current = _split(examples)
    model = LinearModel().fit(train)
    with pytest.raises(ValueError, match="features must not be empty"):
        explain_customers(model, current.iloc[:0])
    with pytest.raises(ValueError, match="k must be a positive integer"):
        explain_customers(model, current, k=0)
    with pytest.raises(ValueError, match=r"missing required column\(s\) \['recency'\]"):
        explain_customers(model, current.drop(columns="recency"))


def test_scored_rows_name_every_version_and_refuse_scores_without_features():
    from clv_platform.ml.explain import scored_rows

    scores = pd.DataFrame(
        {
            "customer_id": ["a", "b"],
            "cutoff_date": pd.Timestamp("2025-06-30"),
            "predicted_clv": [1.0, 2.0],
            "model_name": "clv_model",
            "model_version": ["3", "3"],
        }
    )
    features = pd.DataFrame({"customer_id": ["b", "a"], "cutoff_date": pd.Timestamp("2025-06-30"), "T": [10.0, 20.0]})
    name, versions, rows = scored_rows(scores, features)
    assert (name, versions, rows["customer_id"].tolist(), rows["T"].tolist()) == ("clv_model", ["3"], ["a", "b"], [20.0, 10.0])
    # A canary or A/B cutoff: two versions, each row explained by its own.
    name, versions, rows = scored_rows(scores.assign(model_version=["4", "3"]), features)
    assert (versions, rows["model_version"].tolist()) == (["4", "3"], ["4", "3"])
    with pytest.raises(ValueError, match=r"holds 2 registered models"):
        scored_rows(scores.assign(model_name=["clv_model", "other"]), features)
    with pytest.raises(ValueError, match=r"^1 of 2 customers scored at 2025-06-30 have no row in marts.customer_features"):
        scored_rows(scores, features.iloc[:1])
