"""Metrics on hand-computable cases."""

import math

import numpy as np
import pytest

from clv_platform.ml.metrics import mae, normalized_gini, regression_metrics, rmse


def kaggle_gini(actual, pred):
    """The Kaggle reference construction (ties broken by position); equal to ours when there are no ties."""
    order = np.lexsort((np.arange(len(actual)), -np.asarray(pred, dtype=float)))
    ordered = np.asarray(actual, dtype=float)[order]
    gini = np.cumsum(ordered).sum() / ordered.sum() - (len(actual) + 1) / 2.0
    return gini / len(actual)


def test_rmse_and_mae_by_hand():
    # errors 3 and -4: squared 9 and 16, mean 12.5; absolute 3 and 4, mean 3.5
    assert rmse([1.0, 2.0], [4.0, -2.0]) == pytest.approx(math.sqrt(12.5))
    assert mae([1.0, 2.0], [4.0, -2.0]) == pytest.approx(3.5)
    assert rmse([5, 5, 5], [5, 5, 5]) == 0.0


def test_normalized_gini_perfect_reversed_and_constant():
    actual = [4.0, 3.0, 2.0, 1.0]
    assert normalized_gini(actual, [40, 30, 20, 10]) == pytest.approx(1.0)
    assert normalized_gini(actual, [1, 2, 3, 4]) == pytest.approx(-1.0)
    assert normalized_gini(actual, [7, 7, 7, 7]) == pytest.approx(0.0)


def test_normalized_gini_ties_share_their_group_mean():
    # Sorted by prediction: 4 | (3, 2) tied -> 2.5 each | 1. Cumulative shares .4, .65, .9, 1.0 sum to 2.95;
    # Gini = (2.95 - 2.5) / 4 = 0.1125. Perfect ranking: .4, .7, .9, 1.0 -> (3.0 - 2.5) / 4 = 0.125.
    assert normalized_gini([4, 3, 2, 1], [2, 1, 1, 0]) == pytest.approx(0.1125 / 0.125)


def test_normalized_gini_does_not_depend_on_row_order_when_predictions_tie():
    rng = np.random.default_rng(3)
    actual = rng.gamma(0.5, 100.0, size=200)
    pred = np.round(actual + rng.normal(0, 80, size=200), -2)  # coarse: many ties
    permutation = rng.permutation(200)
    assert normalized_gini(actual, pred) == pytest.approx(normalized_gini(actual[permutation], pred[permutation]))


def test_normalized_gini_matches_the_kaggle_construction_without_ties():
    rng = np.random.default_rng(4)
    actual = rng.gamma(0.5, 100.0, size=300)
    pred = actual + rng.normal(0, 50, size=300)
    expected = kaggle_gini(actual, pred) / kaggle_gini(actual, actual)
    assert normalized_gini(actual, pred) == pytest.approx(expected)
    # only the order of the predictions matters
    assert normalized_gini(actual, np.exp(pred / 100)) == pytest.approx(expected)


def test_normalized_gini_is_nan_when_undefined():
    assert math.isnan(normalized_gini([0, 0, 0], [1, 2, 3]))
    assert math.isnan(normalized_gini([5, 5, 5], [1, 2, 3]))


@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [
        ([], [], "must not be empty"),
        ([1, 2], [1], "same length"),
        ([1, float("nan")], [1, 2], "y_true must be finite"),
        ([1, 2], [1, float("inf")], "y_pred must be finite"),
    ],
)
def test_metrics_reject_bad_input(y_true, y_pred, message):
    with pytest.raises(ValueError, match=message):
        regression_metrics(y_true, y_pred)


def test_regression_metrics_has_the_three_names():
    assert regression_metrics([0.0, 10.0], [1.0, 8.0]) == {
        "rmse": pytest.approx(math.sqrt(2.5)),
        "mae": pytest.approx(1.5),
        "normalized_gini": pytest.approx(1.0),
    }
