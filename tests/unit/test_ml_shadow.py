"""The shadow comparison on planted predictions whose shift, ranks, top customers and tiers are counted by hand."""

import math

import numpy as np
import pytest

from clv_platform.ml import shadow

CHAMPION = [100.0, 200.0, 300.0, 400.0]
# Mean 330 against 250: +32 %. Ranks 1, 3, 2, 4 against 1, 2, 3, 4: d^2 sums to 2, rho = 1 - 6 * 2 / (4 * 15) = 0.8.
CHALLENGER = [160.0, 380.0, 300.0, 480.0]
CUT_POINTS = [150.0, 350.0]


def test_mean_shift_is_relative_to_the_champion_mean():
    assert shadow.mean_shift(CHAMPION, CHALLENGER) == pytest.approx(0.32)
    assert shadow.mean_shift(CHALLENGER, CHAMPION) == pytest.approx(250 / 330 - 1)
    assert shadow.mean_shift([0.0, 0.0], [0.0, 0.0]) == 0.0
    assert shadow.mean_shift([0.0, 0.0], [0.0, 1.0]) == math.inf


def test_rank_correlation_and_top_decile_overlap():
    result = shadow.compare(CHAMPION, CHALLENGER, CUT_POINTS)
    assert result.spearman == pytest.approx(0.8)
    # 20 customers: the top decile is 2. The champion's top two are rows 19 and 18; the challenger keeps 19 and
    # lifts row 0 above 18, so half of the champion's best customers are also the challenger's.
    champion = np.arange(1.0, 21.0)
    challenger = champion.copy()
    challenger[0] = 100.0
    assert shadow.top_overlap(champion, challenger) == 0.5
    assert shadow.compare(champion, challenger, CUT_POINTS).top_decile_overlap == 0.5
    # 25 customers: ceil(2.5) = 3 in the top decile; one of three kept.
    champion = np.arange(1.0, 26.0)
    challenger = champion[::-1].copy()
    challenger[24] = 1000.0
    assert shadow.top_overlap(champion, challenger) == pytest.approx(1 / 3)


def test_tier_moves_count_customers_by_champion_and_challenger_tier_at_the_batch_cut_points():
    result = shadow.compare(CHAMPION, CHALLENGER, CUT_POINTS)
    # Champion tiers: 100 Low, 200 Medium, 300 Medium, 400 High.
    # Challenger tiers: 160 Medium, 380 High, 300 Medium, 480 High.
    assert result.tier_moves.index.tolist() == ["Low", "Medium", "High"]
    assert result.tier_moves.columns.tolist() == ["Low", "Medium", "High"]
    assert result.tier_moves.values.tolist() == [[0, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert result.customers_changing_tier == 2
    # A prediction equal to a cut point stays in the tier below, as in scoring.value_tiers.
    assert shadow.tier_moves([150.0], [150.0001], CUT_POINTS).values.tolist() == [[0, 1, 0], [0, 0, 0], [0, 0, 0]]
    markdown = result.tier_moves_markdown()
    assert "| Medium | 0 | 1 | 1 |" in markdown and "| Low | 0 | 1 | 0 |" in markdown


def test_the_comparison_names_every_number():
    result = shadow.compare(CHAMPION, CHALLENGER, CUT_POINTS)
    assert result.metrics() == {
        "customers": 4,
        "champion_mean_prediction": 250.0,
        "challenger_mean_prediction": 330.0,
        "mean_shift": pytest.approx(0.32),
        "spearman": pytest.approx(0.8),
        "top_decile_overlap": 1.0,
        "customers_changing_tier": 2,
    }
    same = shadow.compare(CHAMPION, CHAMPION, CUT_POINTS)
    assert (same.mean_shift, same.spearman, same.top_decile_overlap, same.customers_changing_tier) == (0.0, 1.0, 1.0, 0)


@pytest.mark.parametrize(
    ("champion", "challenger", "message"),
    [
        ([], [], "must not be empty"),
        ([1.0, 2.0], [1.0], "same customers, got 2 and 1"),
        ([1.0, float("nan")], [1.0, 2.0], "champion predictions must be finite: 1 null"),
        ([1.0, 2.0], [float("inf"), 2.0], "challenger predictions must be finite"),
    ],
)
def test_predictions_that_cannot_be_compared_are_refused(champion, challenger, message):
    with pytest.raises(ValueError, match=message):
        shadow.compare(champion, challenger, CUT_POINTS)
