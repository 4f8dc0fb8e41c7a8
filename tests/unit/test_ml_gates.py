"""The registry gates as pure policy: the gates' verdict on a candidate and the champion decision, on hand-made metrics."""

import math

import pytest

from clv_platform.ml import gates

BTYD = {"mae": 100.0, "spearman": 0.50, "normalized_gini": 0.60}
HEURISTIC = {"mae": 120.0, "spearman": 0.40, "normalized_gini": 0.55}
CHAMPION = {"mae": 95.0, "spearman": 0.56, "normalized_gini": 0.65, "mean_prediction": 200.0}
GOOD = {"mae": 90.0, "spearman": 0.60, "normalized_gini": 0.70, "fairness_ratio": 0.9, "mean_prediction": 210.0}


def test_a_better_model_passes_every_gate():
    gate_verdict = gates.decide_challenger(GOOD, CHAMPION, {"btyd": BTYD, "heuristic": HEURISTIC})
    assert gate_verdict.passed and gate_verdict.failures == []
    assert [r.split(":")[0] for r in gate_verdict.reasons] == [
        "beats_champion",
        "beats_baselines",
        "normalized_gini_floor",
        "fairness_floor",
        "mean_shift",
    ]


@pytest.mark.parametrize(
    ("change", "failed"),
    [
        # 94.1 > 95 x 0.99 = 94.05: better than the champion, but not by the 1 % margin; beats the baselines
        ({"mae": 94.1}, {"beats_champion": "MAE 94.1000 is not < champion's 95.0000 x (1 - 0.01)"}),
        # 0.565 < 0.56 + 0.01
        ({"spearman": 0.565}, {"beats_champion": "Spearman 0.5650 is not > champion's 0.5600 + 0.01"}),
        # 0.605 < BTYD's 0.60 + 0.01 and the champion's 0.65 + 0.01; above the heuristic's 0.55 + 0.01
        (
            {"normalized_gini": 0.605, "spearman": 0.60},
            {
                "beats_champion": "normalized Gini 0.6050 is not > champion's 0.6500 + 0.01",
                "beats_baselines": "btyd: normalized Gini 0.6050 is not > btyd's 0.6000 + 0.01",
            },
        ),
        ({"fairness_ratio": 0.79}, {"fairness_floor": "fairness ratio 0.7900 is not >= 0.8"}),
        # a nan beats nothing: refused against the champion and every baseline
        (
            {"mae": float("nan")},
            {
                "beats_champion": "MAE nan is not < champion's 95.0000 x (1 - 0.01)",
                "beats_baselines": "btyd: MAE nan is not < btyd's 100.0000 x (1 - 0.01); "
                "heuristic: MAE nan is not < heuristic's 120.0000 x (1 - 0.01)",
            },
        ),
    ],
)
def test_a_worse_model_is_refused_by_exactly_the_gates_it_fails(change, failed):
    gate_verdict = gates.decide_challenger({**GOOD, **change}, CHAMPION, {"btyd": BTYD, "heuristic": HEURISTIC})
    assert not gate_verdict.passed
    assert {gate: why for gate, (ok, why) in gate_verdict.gates.items() if not ok} == failed


def test_the_gates_decide_who_scores_promote_or_keep():
    baselines = {"btyd": BTYD, "heuristic": HEURISTIC}
    promoted = gates.decide_champion("xgboost", gates.decide_challenger(GOOD, CHAMPION, baselines), CHAMPION, baselines)
    assert (promoted.action, promoted.model, promoted.baseline_serves) == ("promote", "xgboost", False)
    # The same candidate a hair short of the champion's MAE bar (95 x 0.99 = 94.05): the champion stays.
    short = gates.decide_challenger({**GOOD, "mae": 94.06}, CHAMPION, baselines)
    kept = gates.decide_champion("xgboost", short, CHAMPION, baselines)
    assert (short.passed, kept.action, kept.model, kept.baseline_serves) == (False, "keep", "champion", False)


def test_the_gini_floor_applies_even_without_a_champion():
    weak = {"mae": 50.0, "spearman": 0.30, "normalized_gini": 0.25, "fairness_ratio": 1.0}
    low = {"mae": 60.0, "spearman": 0.10, "normalized_gini": 0.10}
    gate_verdict = gates.decide_challenger(weak, None, {"heuristic": low})
    assert gate_verdict.failures == ["normalized_gini_floor: normalized Gini 0.2500 is not >= 0.3"]
    assert gates.decide_challenger(weak, None, {"heuristic": low}, gates.GatePolicy(min_normalized_gini=0.2)).passed


def test_bad_gate_input_is_refused():
    with pytest.raises(ValueError, match="baselines must name at least one"):
        gates.decide_challenger(GOOD, None, {})
    with pytest.raises(ValueError, match="candidate metrics must contain 'fairness_ratio'"):
        gates.decide_challenger({k: v for k, v in GOOD.items() if k != "fairness_ratio"}, None, {"btyd": BTYD})
    with pytest.raises(ValueError, match="mae_margin must be in"):
        gates.GatePolicy(mae_margin=1.5)


def test_best_model_ranks_over_the_three_metrics():
    # heuristic: ranks 2+2+2 = 6; btyd: 1+1+1 = 3
    assert gates.best_model({"heuristic": HEURISTIC, "btyd": BTYD}) == "btyd"
    # a: ranks 1+2+2 = 5, b: 2+1+1 = 4 -> b despite the higher MAE
    assert (
        gates.best_model(
            {
                "a": {"mae": 1.0, "spearman": 0.1, "normalized_gini": 0.1},
                "b": {"mae": 2.0, "spearman": 0.2, "normalized_gini": 0.2},
            }
        )
        == "b"
    )
    # equal rank sums (3 + 3): the lower MAE wins
    assert (
        gates.best_model(
            {
                "a": {"mae": 1.0, "spearman": 0.1, "normalized_gini": 0.3},
                "b": {"mae": 2.0, "spearman": 0.2, "normalized_gini": 0.2},
            }
        )
        == "a"
    )


def test_champion_rules_first_model_baseline_wins_and_keep():
    refused = gates.decide_challenger({**GOOD, "fairness_ratio": 0.5}, None, {"btyd": BTYD})
    first = gates.decide_champion("xgboost", refused, None, {"btyd": BTYD, "heuristic": HEURISTIC})
    assert (first.action, first.model, first.baseline_serves) == ("baseline", "btyd", True)
    assert "xgboost was refused (fairness_floor" in first.reason and "no champion yet" in first.reason

    short = gates.decide_champion(
        None, None, None, {"btyd": BTYD}, no_candidate_reason="history too short for supervised training"
    )
    assert short.model == "btyd" and short.reason.startswith("history too short")

    weak_champion = {"mae": 130.0, "spearman": 0.30, "normalized_gini": 0.40}
    replaced = gates.decide_champion("xgboost", refused, weak_champion, {"btyd": BTYD})
    assert (replaced.action, replaced.model) == ("baseline", "btyd") and "beats the champion" in replaced.reason

    kept = gates.decide_champion("xgboost", refused, CHAMPION, {"btyd": BTYD})
    assert (kept.action, kept.model) == ("keep", "champion") and "btyd does not beat it" in kept.reason


def test_a_tie_is_not_a_win():
    policy = gates.GatePolicy(mae_margin=0.0, spearman_margin=0.0, gini_margin=0.0)
    assert not gates.decide_challenger({**BTYD, "fairness_ratio": 1.0}, None, {"btyd": BTYD}, policy).passed
    assert gates.decide_champion(None, None, BTYD, {"btyd": BTYD}, policy=policy).action == "keep"


def test_fairness_without_slices_to_compare_is_not_a_refusal():
    gate_verdict = gates.decide_challenger({**GOOD, "fairness_ratio": float("nan")}, CHAMPION, {"btyd": BTYD})
    assert gate_verdict.passed and gate_verdict.gates["fairness_floor"] == (
        True,
        "fairness ratio undefined: fewer than two slices large enough to compare",
    )


@pytest.mark.parametrize(
    ("mean", "passed", "why"),
    [
        # 228 against 200: +14 %, inside the default 15 % either way; 232: +16 %, beyond it.
        (228.0, True, "mean prediction 228.00 against the champion's 200.00: shift +14.0% within the bound of 15% either way"),
        (
            232.0,
            False,
            "mean prediction 232.00 against the champion's 200.00: shift +16.0% is beyond the bound of 15% either way",
        ),
        (172.0, True, "mean prediction 172.00 against the champion's 200.00: shift -14.0% within the bound of 15% either way"),
        (
            168.0,
            False,
            "mean prediction 168.00 against the champion's 200.00: shift -16.0% is beyond the bound of 15% either way",
        ),
        (
            float("nan"),
            False,
            "mean prediction nan against the champion's 200.00: shift undefined is beyond the bound of 15% either way",
        ),
    ],
)
def test_the_mean_shift_gate_bounds_the_move_of_the_mean_prediction_either_way(mean, passed, why):
    gate_verdict = gates.decide_challenger({**GOOD, "mean_prediction": mean}, CHAMPION, {"btyd": BTYD})
    assert gate_verdict.gates["mean_shift"] == (passed, why)
    # Every other gate passes: the shift alone decides.
    assert gate_verdict.passed is passed and len(gate_verdict.failures) == (0 if passed else 1)


def test_the_mean_shift_bound_is_configurable_and_needs_a_champion():
    shifted = {**GOOD, "mean_prediction": 232.0}
    assert gates.decide_challenger(shifted, CHAMPION, {"btyd": BTYD}, gates.GatePolicy(max_mean_shift=0.2)).passed
    # No champion: nothing to shift from, and no mean is needed.
    first = gates.decide_challenger({k: v for k, v in GOOD.items() if k != "mean_prediction"}, None, {"btyd": BTYD})
    assert first.passed and first.gates["mean_shift"] == (True, "no champion to compare")
    with pytest.raises(ValueError, match="champion metrics must contain 'mean_prediction'"):
        gates.decide_challenger(GOOD, {k: v for k, v in CHAMPION.items() if k != "mean_prediction"}, {"btyd": BTYD})
    with pytest.raises(ValueError, match="max_mean_shift must be > 0"):
        gates.GatePolicy(max_mean_shift=0.0)


def test_the_mean_shift_reads_the_customers_scoring_would_score():
    import pandas as pd

    from clv_platform.ml.ladder import LadderEvaluation
    from clv_platform.ml.registration import population_mean

    # Days since the last purchase (T - recency): 10, 365, 366, 0. The third is not active within 365 days.
    evaluation = pd.DataFrame({"T": [100.0, 400.0, 500.0, 30.0], "recency": [90.0, 35.0, 134.0, 30.0]}, index=[7, 3, 9, 1])
    result = LadderEvaluation(evaluation, evaluation, {}, {}, pd.DataFrame(), None, None)
    # Scoring clips at 0: (30 + 60 + 0) / 3 over the active rows; the inactive 1000 is not in the population.
    assert population_mean(result, [30.0, 60.0, 1000.0, -12.0], 365) == 30.0
    assert population_mean(result, [30.0, 60.0, 1000.0, -12.0], 10) == 15.0
    assert math.isnan(
        population_mean(
            result.__class__(evaluation.iloc[[2]], evaluation.iloc[[2]], {}, {}, pd.DataFrame(), None, None), [5.0], 365
        )
    )
    with pytest.raises(ValueError, match="3 predictions for 4 evaluation rows"):
        population_mean(result, [1.0, 2.0, 3.0], 365)
