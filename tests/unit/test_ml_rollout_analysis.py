"""clv_platform.ml.rollout_analysis on planted populations: metrics, bootstrap intervals and the recommendation."""

from __future__ import annotations

import numpy as np
import pytest

from clv_platform.ml import metrics
from clv_platform.ml import rollout_analysis as ra


def _revenue(rng: np.random.Generator, n: int) -> np.ndarray:
    """Zero-inflated, heavy-tailed revenue: about half the customers buy nothing."""
    return np.round(rng.gamma(0.6, 250.0, n) * (rng.random(n) < 0.5), 2)


def _rollout(seed: int, n: int, champion, challenger, challenger_share: float = 0.5):
    """Realized revenue, predictions (each arm by its own function of the revenue and the rng) and arms."""
    rng = np.random.default_rng(seed)
    realized = _revenue(rng, n)
    arms = np.where(rng.random(n) < challenger_share, "challenger", "champion")
    predicted = np.where(arms == "challenger", challenger(realized, rng), champion(realized, rng))
    return realized, np.clip(predicted, 0.0, None), arms


def _noisy(scale: float, factor: float = 1.0):
    return lambda y, rng: factor * y + rng.normal(0.0, scale, y.size)


def test_resampled_metrics_equal_the_metrics_of_the_drawn_customers():
    """A resample weighted by counts scores exactly as ml.metrics on those customers repeated, ties included."""
    rng = np.random.default_rng(3)
    true = np.round(_revenue(rng, 60), -1)
    pred = np.round(true * 0.5 + rng.gamma(1.0, 30.0, 60), -1)  # rounded: many ties on both sides
    arm = ra._Arm(true, pred)
    weights = rng.integers(0, 4, size=(3, 60)).astype("float64")
    drawn = arm.resampled(weights)
    for row in range(3):
        rows = np.repeat(np.arange(60), weights[row].astype(int))
        y, p = arm.true[rows], arm.pred[rows]
        expected = {
            "mae": metrics.mae(y, p),
            "spearman": metrics.spearman(y, p),
            "normalized_gini": metrics.normalized_gini(y, p),
            "bias": metrics.aggregate_bias(y, p),
        }
        for metric, value in expected.items():
            assert drawn[metric][row] == pytest.approx(value, rel=1e-12, abs=1e-12), (metric, row)
    unit = arm.resampled(np.ones((1, 60)))
    assert {m: pytest.approx(float(v[0]), rel=1e-12) for m, v in unit.items()} == arm.point()


def test_a_noisier_biased_challenger_is_rolled_back_naming_the_primary_metric():
    realized, predicted, arms = _rollout(1, 4000, _noisy(60.0), _noisy(180.0, factor=1.4))
    result = ra.analyse(realized, predicted, arms, resamples=400, seed=0)
    assert result.recommendation == ra.ROLLBACK, result.reason
    assert result.reason.startswith("challenger significantly worse: mae challenger")
    mae = next(c for c in result.comparisons if c.metric == "mae")
    assert mae.difference.ci_low > 0
    assert f"{mae.difference.value:+.4g}" in result.reason


def test_a_more_accurate_challenger_is_promoted():
    realized, predicted, arms = _rollout(2, 4000, _noisy(120.0), _noisy(30.0))
    result = ra.analyse(realized, predicted, arms, resamples=400, seed=0)
    assert result.recommendation == ra.PROMOTE, result.reason
    mae = next(c for c in result.comparisons if c.metric == "mae")
    assert mae.difference.ci_high < 0
    assert "mae challenger" in result.reason and "95% CI" in result.reason


def test_a_challenger_as_accurate_but_biased_in_total_is_rolled_back_for_its_bias():
    """A constant overestimate as large as the champion's mean error: the same MAE, a ranking at least as good,
    but far more revenue forecast in total. The rule rolls back on any metric significantly worse, and says which."""
    sigma = 80.0
    rng = np.random.default_rng(123)
    population = _revenue(rng, 500_000)
    shift = metrics.mae(population, np.clip(population + rng.normal(0.0, sigma, population.size), 0.0, None))
    realized, predicted, arms = _rollout(4, 6000, _noisy(sigma), lambda y, rng: y + shift)
    result = ra.analyse(realized, predicted, arms, resamples=400, seed=0)
    by_metric = {c.metric: c for c in result.comparisons}
    assert not by_metric["mae"].significantly_worse()
    assert result.recommendation == ra.ROLLBACK, result.reason
    assert "|bias| challenger" in result.reason and "mae" not in result.reason


def test_equal_models_keep_collecting():
    realized, predicted, arms = _rollout(5, 4000, _noisy(80.0), _noisy(80.0))
    result = ra.analyse(realized, predicted, arms, resamples=400, seed=0)
    assert result.recommendation == ra.KEEP_COLLECTING, result.reason
    assert result.reason.startswith("no significant difference yet: mae")


def test_tiny_arms_keep_collecting_even_when_the_challenger_is_far_worse():
    realized, predicted, arms = _rollout(6, 2000, _noisy(30.0), _noisy(300.0, factor=2.0), challenger_share=0.02)
    result = ra.analyse(realized, predicted, arms, resamples=200, seed=0)
    assert result.customers["challenger"] < ra.MIN_CUSTOMERS_PER_ARM
    assert result.recommendation == ra.KEEP_COLLECTING
    assert f"challenger {result.customers['challenger']}" in result.reason and "at least 100" in result.reason
    # The same arms with a lower bar get a verdict.
    lowered = ra.analyse(realized, predicted, arms, resamples=200, seed=0, min_customers=20)
    assert lowered.recommendation == ra.ROLLBACK, lowered.reason


def test_the_intervals_cover_the_population_values_at_their_confidence():
    """Arms drawn from a population whose MAE and bias are known: the 90 % intervals cover them about 90 % of the time."""
    sigma, factor, runs = 50.0, 1.2, 40
    covered = {"mae": 0, "bias": 0}
    population_rng = np.random.default_rng(99)
    population = _revenue(population_rng, 2_000_000)
    # pred = factor * y + N(0, sigma) clipped at 0: its MAE and bias over a very large population.
    big_pred = np.clip(factor * population + population_rng.normal(0.0, sigma, population.size), 0, None)
    true_mae_and_bias = {"mae": metrics.mae(population, big_pred), "bias": metrics.aggregate_bias(population, big_pred)}
    for seed in range(runs):
        realized, predicted, arms = _rollout(1000 + seed, 1500, _noisy(sigma, factor), _noisy(sigma, factor))
        result = ra.analyse(realized, predicted, arms, resamples=300, confidence=0.9, seed=seed)
        for comparison in result.comparisons:
            if comparison.metric in covered:
                estimate = comparison.champion
                covered[comparison.metric] += estimate.ci_low <= true_mae_and_bias[comparison.metric] <= estimate.ci_high
    # 40 runs at 90 %: the number covered is Binomial(40, 0.9), at least 31 with probability > 0.99.
    assert covered["mae"] >= 31 and covered["bias"] >= 31, covered


def test_the_analysis_is_deterministic_with_its_seed():
    realized, predicted, arms = _rollout(7, 1000, _noisy(80.0), _noisy(60.0))
    first = ra.analyse(realized, predicted, arms, resamples=200, seed=11).table()
    again = ra.analyse(realized, predicted, arms, resamples=200, seed=11).table()
    other = ra.analyse(realized, predicted, arms, resamples=200, seed=12).table()
    assert first.equals(again)
    assert not first["ci_low"].equals(other["ci_low"])
    assert (first["estimate"] == other["estimate"]).all()  # the point estimates do not depend on the seed
    assert len(first) == len(ra.METRICS) * 3 and set(first["arm"]) == {"champion", "challenger", "difference"}


def test_arms_other_than_champion_and_challenger_are_refused():
    with pytest.raises(ValueError, match=r"arms must be 'champion' or 'challenger', got \['control'\]"):
        ra.analyse([1.0, 2.0], [1.0, 2.0], ["champion", "control"])


def test_a_label_window_has_elapsed_when_the_transactions_reach_its_last_day():
    """As for the training cutoffs: the window [cutoff, cutoff + horizon) is complete with data through its last day."""
    import datetime

    cutoff = datetime.date(2025, 10, 1)
    last_day = datetime.date(2025, 12, 30)  # cutoff + 91 days - 1
    assert ra.WarehouseState(91, None, last_day).window_end(cutoff) == datetime.date(2025, 12, 31)
    assert ra.WarehouseState(91, None, last_day).elapsed(cutoff)
    assert not ra.WarehouseState(91, None, last_day - datetime.timedelta(days=1)).elapsed(cutoff)
    assert not ra.WarehouseState(91, None, None).elapsed(cutoff)
