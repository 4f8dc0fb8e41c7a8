"""Metrics on hand-computable cases."""

import math

import numpy as np
import pytest

from clv_platform.ml.metrics import (
    aggregate_bias,
    decile_calibration,
    disparate_impact_ratio,
    lorenz_curve,
    mae,
    normalized_gini,
    regression_metrics,
    rmse,
    spearman,
    top_share_capture,
)


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


def test_lorenz_curve_by_hand():
    # By prediction: 5 (actual 3), then the tie 1|1 (actuals 1 and 4 -> 2.5 each), total 8.
    # Cumulative: 3/8, 5.5/8, 8/8.
    x, y = lorenz_curve([3, 1, 4], [5, 1, 1])
    assert x.tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert y.tolist() == pytest.approx([0, 0.375, 0.6875, 1.0])
    with pytest.raises(ValueError, match="must not sum to zero"):
        lorenz_curve([0, 0], [1, 2])


def test_spearman_by_hand():
    # ranks of true 1,2,3,4; ranks of pred 1,3,2,4: d = 0,-1,1,0, sum d^2 = 2,
    # rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert spearman([10, 20, 30, 40], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # only the order matters
    assert spearman([1, 2, 3, 4], [1, 10, 100, 1000]) == pytest.approx(1.0)


def test_spearman_with_ties_uses_average_ranks():
    # true 0,0,5,7 -> ranks 1.5,1.5,3,4 (mean 2.5; centred -1,-1,.5,1.5; squares sum 4.5)
    # pred 1,2,3,4 -> ranks 1,2,3,4 (centred -1.5,-.5,.5,1.5; squares sum 5)
    # products 1.5 + .5 + .25 + 2.25 = 4.5 -> rho = 4.5 / sqrt(4.5 * 5) = sqrt(0.9)
    assert spearman([0, 0, 5, 7], [1, 2, 3, 4]) == pytest.approx(math.sqrt(0.9))


def test_spearman_is_nan_for_a_constant_side():
    assert math.isnan(spearman([1, 2, 3], [4, 4, 4]))
    assert math.isnan(spearman([0, 0, 0], [1, 2, 3]))


def test_top_share_capture_by_hand():
    actual = [50, 0, 30, 0, 0, 0, 0, 0, 0, 20]  # total 100
    pred = [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    # top 10 % = 1 customer (pred 9, actual 50) -> 0.5
    assert top_share_capture(actual, pred) == pytest.approx(0.5)
    # top 30 % = 3 customers (50 + 0 + 30) -> 0.8
    assert top_share_capture(actual, pred, share=0.3) == pytest.approx(0.8)
    # share 0.25 of 10 -> ceil(2.5) = 3 customers
    assert top_share_capture(actual, pred, share=0.25) == pytest.approx(0.8)
    assert top_share_capture(actual, pred, share=1.0) == pytest.approx(1.0)


def test_top_share_capture_splits_a_tie_at_the_edge():
    # n = 10, top 1: the two customers predicted 9 tie (actuals 50 and 0): the one taken counts 25 of 100
    actual = [50, 0, 30, 0, 0, 0, 0, 0, 0, 20]
    pred = [9, 9, 7, 6, 5, 4, 3, 2, 1, 0]
    assert top_share_capture(actual, pred) == pytest.approx(0.25)
    assert top_share_capture(actual[::-1], pred[::-1]) == pytest.approx(0.25)


@pytest.mark.parametrize("share", [0, -0.1, 1.5])
def test_top_share_capture_rejects_a_share_outside_0_1(share):
    with pytest.raises(ValueError, match="share must be in"):
        top_share_capture([1, 2], [1, 2], share=share)


def test_top_share_capture_and_bias_are_nan_without_actual_value():
    assert math.isnan(top_share_capture([0, 0], [1, 2]))
    assert math.isnan(aggregate_bias([0, 0], [1, 2]))


def test_aggregate_bias_by_hand():
    # predicted 120 against actual 100: +20 %
    assert aggregate_bias([40, 60], [70, 50]) == pytest.approx(0.2)
    # predicted 75 against 100: -25 %
    assert aggregate_bias([40, 60], [0, 75]) == pytest.approx(-0.25)
    assert aggregate_bias([1, 2], [2, 1]) == 0.0


def test_decile_calibration_by_hand():
    # 20 customers, predictions 1..20 -> 2 per decile; decile k holds predictions 2k-1, 2k
    pred = np.arange(1, 21, dtype=float)
    actual = np.where(pred > 18, 100.0, 0.0)  # only the two highest spend
    table = decile_calibration(actual, pred)
    assert table["decile"].tolist() == list(range(1, 11))
    assert table["n"].tolist() == [2] * 10
    assert table["mean_predicted"].tolist() == pytest.approx([2 * k - 0.5 for k in range(1, 11)])
    assert table["mean_actual"].tolist() == [0.0] * 9 + [100.0]


def test_decile_calibration_keeps_ties_in_one_bin():
    # 6 zeros and 4 distinct positives, 5 bins: the zeros' average rank is 3.5 -> bin floor(5*3/10)+1 = 2;
    # ranks 7..10 -> bins floor(5*6.5/10)+1 = 4, 4, 5, 5. Bins 1 and 3 are empty and left out.
    pred = [0, 0, 0, 0, 0, 0, 1, 2, 3, 4]
    actual = [0, 0, 0, 0, 0, 6, 1, 3, 5, 7]
    table = decile_calibration(actual, pred, n_bins=5)
    assert table["decile"].tolist() == [2, 4, 5]
    assert table["n"].tolist() == [6, 2, 2]
    assert table["mean_predicted"].tolist() == pytest.approx([0.0, 1.5, 3.5])
    assert table["mean_actual"].tolist() == pytest.approx([1.0, 2.0, 6.0])
    # the same rows in another order give the same table
    order = np.random.default_rng(0).permutation(10)
    shuffled = decile_calibration(np.array(actual)[order], np.array(pred)[order], n_bins=5)
    assert shuffled.equals(table)


def test_decile_calibration_rejects_bad_bins():
    with pytest.raises(ValueError, match="n_bins must be a positive integer"):
        decile_calibration([1, 2], [1, 2], n_bins=0)


def test_disparate_impact_ratio_by_hand():
    # slice means: GB (10 + 20) / 2 = 15, FR (6 + 6) / 2 = 6, DE 30 but only 1 customer (< min_size 2)
    result = disparate_impact_ratio([10, 20, 6, 6, 30], ["GB", "GB", "FR", "FR", "DE"], min_size=2)
    assert result.ratio == pytest.approx(6 / 15)
    assert result.slice_means == {"FR": 6.0, "GB": 15.0}
    assert result.excluded == {"DE": 1}
    assert (result.lowest, result.highest) == ("FR", "GB")


def test_disparate_impact_ratio_is_nan_with_fewer_than_two_slices():
    assert math.isnan(disparate_impact_ratio([1, 2, 3], ["a", "a", "b"], min_size=2).ratio)
    assert math.isnan(disparate_impact_ratio([0, 0, 0, 0], ["a", "a", "b", "b"], min_size=2).ratio)
    assert disparate_impact_ratio([2, 2, 2, 2], ["a", "a", "b", "b"], min_size=2).ratio == 1.0


@pytest.mark.parametrize(
    ("pred", "groups", "message"),
    [
        ([1, -1], ["a", "b"], "must be >= 0"),
        ([1, 2], ["a", None], "groups must not be null"),
        ([1, 2], ["a"], "same length"),
        ([1, float("nan")], ["a", "b"], "must be finite"),
    ],
)
def test_disparate_impact_ratio_rejects_bad_input(pred, groups, message):
    with pytest.raises(ValueError, match=message):
        disparate_impact_ratio(pred, groups, min_size=1)
