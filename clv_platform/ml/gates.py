"""The registry gates as pure policy: which candidate earns the ``challenger`` alias and which model is champion.

Two decisions, two types: :func:`decide_challenger` gives the gates' :class:`GateVerdict` on the supervised
candidate; :func:`decide_champion` turns that verdict and the baselines' metrics into the
:class:`ChampionDecision` (promote, baseline or keep). The MLflow side (moving the aliases) is
:mod:`clv_platform.ml.registry`. Light to import (pandas only inside :func:`best_model` and the mean-shift gate): the gate names
define asset checks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

# The gates a candidate must pass, in the order they are reported (each is a blocking check of ml/challenger).
GATES: tuple[str, ...] = ("beats_champion", "beats_baselines", "normalized_gini_floor", "fairness_floor", "mean_shift")
# How each gate metric is compared: lower MAE is better; higher Spearman and normalized Gini are better.
GATE_METRICS: tuple[str, ...] = ("mae", "spearman", "normalized_gini")
FAIRNESS_METRIC = "fairness_ratio"
# The mean prediction on the population being scored (active customers at the cutoff), what the mean-shift gate reads.
MEAN_PREDICTION = "mean_prediction"


@dataclass(frozen=True)
class GatePolicy:
    """The margins and floors a new model must clear to become challenger.

    Attributes
    ----------
    mae_margin
        Relative: the candidate's MAE must be below ``(1 - mae_margin)`` times the other model's
        (0.01 = more than 1 % lower).
    spearman_margin, gini_margin
        Absolute: the candidate's Spearman correlation and normalized Gini must exceed the other
        model's plus this (0.01 = more than one point on the 0-1 scale). All comparisons are strict,
        so with zero margins a tie does not count as beating.
    min_normalized_gini
        Floor on the candidate's normalized Gini.
    min_fairness_ratio
        Floor on the candidate's ``fairness_ratio``: its disparate-impact ratio (lowest slice mean
        prediction over the highest, across country and acquisition-channel slices), by default relative
        to the actual revenue's (:func:`clv_platform.ml.metrics.relative_disparate_impact`).
    max_mean_shift
        Bound on the relative shift of the candidate's mean prediction from the champion's on the population
        being scored, either way (0.15 = at most 15 % more or less): a model that would move every budget
        built on the scores at once waits for a person.
    """

    mae_margin: float = 0.01
    spearman_margin: float = 0.01
    gini_margin: float = 0.01
    min_normalized_gini: float = 0.3
    min_fairness_ratio: float = 0.8
    max_mean_shift: float = 0.15

    def __post_init__(self):
        if not 0.0 <= self.mae_margin < 1.0:
            raise ValueError(f"mae_margin must be in [0, 1), got {self.mae_margin}")
        for name in ("spearman_margin", "gini_margin"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not -1.0 <= self.min_normalized_gini <= 1.0:
            raise ValueError(f"min_normalized_gini must be in [-1, 1], got {self.min_normalized_gini}")
        if not 0.0 <= self.min_fairness_ratio <= 1.0:
            raise ValueError(f"min_fairness_ratio must be in [0, 1], got {self.min_fairness_ratio}")
        if not self.max_mean_shift > 0.0:
            raise ValueError(f"max_mean_shift must be > 0, got {self.max_mean_shift}")


@dataclass(frozen=True)
class GateVerdict:
    """The gates' verdict on a candidate: whether it passed, and each gate's reason in words.

    Attributes
    ----------
    passed
        All gates passed.
    gates
        Gate name -> (passed, why), for each gate of :data:`GATES`.
    """

    passed: bool
    gates: dict[str, tuple[bool, str]] = field(default_factory=dict)

    @property
    def reasons(self) -> list[str]:
        """Every gate's verdict, ``"<gate>: passed|FAILED: why"``."""
        return [f"{name}: {'passed' if ok else 'FAILED'}: {why}" for name, (ok, why) in self.gates.items()]

    @property
    def failures(self) -> list[str]:
        return [f"{name}: {why}" for name, (ok, why) in self.gates.items() if not ok]


def _metric(metrics: Mapping[str, float], key: str, owner: str) -> float:
    if key not in metrics:
        raise ValueError(f"{owner} metrics must contain '{key}', got keys {sorted(metrics)}")
    return float(metrics[key])


def _comparison(candidate: Mapping[str, float], other: Mapping[str, float], other_name: str, policy: GatePolicy) -> list[str]:
    """The ways ``candidate`` fails to beat ``other`` by the policy's margins (empty: it beats it).

    A ``nan`` of the candidate fails; a ``nan`` of the other model (the Spearman of a constant
    prediction, say) is no bar, as that model has no value there to beat.
    """
    failures = []
    mae, other_mae = _metric(candidate, "mae", "candidate"), _metric(other, "mae", other_name)
    bar = other_mae * (1.0 - policy.mae_margin)
    if math.isfinite(other_mae) and not mae < bar:  # "not <" also catches a nan
        failures.append(f"MAE {mae:.4f} is not < {other_name}'s {other_mae:.4f} x (1 - {policy.mae_margin})")
    for key, label, margin in (
        ("spearman", "Spearman", policy.spearman_margin),
        ("normalized_gini", "normalized Gini", policy.gini_margin),
    ):
        value, other_value = _metric(candidate, key, "candidate"), _metric(other, key, other_name)
        if math.isfinite(other_value) and not value > other_value + margin:
            failures.append(f"{label} {value:.4f} is not > {other_name}'s {other_value:.4f} + {margin}")
    return failures


def decide_challenger(
    candidate: Mapping[str, float],
    champion: Mapping[str, float] | None,
    baselines: Mapping[str, Mapping[str, float]],
    policy: GatePolicy = GatePolicy(),
) -> GateVerdict:
    """Whether a new model earns the ``challenger`` alias, with every gate's reason.

    All metrics are on the same evaluation window. The candidate passes only if:

    - ``beats_champion``: there is no champion, or it beats the champion on every metric of
      :data:`GATE_METRICS` by the margins of ``policy`` (MAE relatively lower, Spearman and normalized
      Gini absolutely higher);
    - ``beats_baselines``: it beats every baseline in the same way;
    - ``normalized_gini_floor``: its normalized Gini is ``>= policy.min_normalized_gini``;
    - ``fairness_floor``: its ``fairness_ratio`` is ``>= policy.min_fairness_ratio``;
      a ``nan`` ratio (fewer than two slices large enough to compare) passes, saying so;
    - ``mean_shift``: there is no champion, or the relative shift of its ``mean_prediction`` from the
      champion's (:func:`clv_platform.ml.shadow.relative_shift`) is at most ``policy.max_mean_shift`` either way.

    Any other metric of the candidate that is ``nan`` fails its gate.

    Parameters
    ----------
    candidate
        The new model's ``mae``, ``spearman``, ``normalized_gini`` and ``fairness_ratio``, and its
        ``mean_prediction`` on the population being scored when there is a champion.
    champion
        The current champion's metrics on the same window, with its ``mean_prediction`` on the same
        population, or ``None`` if there is none.
    baselines
        Baseline name -> its metrics. Must not be empty: a model is judged against the baselines.

    Examples
    --------
    >>> base = {"btyd": {"mae": 100.0, "spearman": 0.50, "normalized_gini": 0.60}}
    >>> good = {"mae": 90.0, "spearman": 0.55, "normalized_gini": 0.70, "fairness_ratio": 0.9}
    >>> decide_challenger(good, None, base).passed
    True
    >>> decide_challenger({**good, "mae": 99.5}, None, base).failures
    ["beats_baselines: btyd: MAE 99.5000 is not < btyd's 100.0000 x (1 - 0.01)"]
    """
    if not baselines:
        raise ValueError("baselines must name at least one baseline's metrics: a model is judged against them")
    gates: dict[str, tuple[bool, str]] = {}
    if champion is None:
        gates["beats_champion"] = (True, "no champion yet")
    else:
        failures = _comparison(candidate, champion, "champion", policy)
        gates["beats_champion"] = (not failures, "; ".join(failures) or "beats the champion on MAE, Spearman and normalized Gini")
    baseline_failures = [
        f"{name}: {failure}" for name, metrics in baselines.items() for failure in _comparison(candidate, metrics, name, policy)
    ]
    gates["beats_baselines"] = (
        not baseline_failures,
        "; ".join(baseline_failures) or f"beats {', '.join(baselines)} on MAE, Spearman and normalized Gini",
    )
    gini = _metric(candidate, "normalized_gini", "candidate")
    gates["normalized_gini_floor"] = (
        gini >= policy.min_normalized_gini,
        f"normalized Gini {gini:.4f} {'>=' if gini >= policy.min_normalized_gini else 'is not >='} {policy.min_normalized_gini}",
    )
    fairness = _metric(candidate, FAIRNESS_METRIC, "candidate")
    if math.isnan(fairness):
        # Fewer than two slices large enough to compare (a log without country or channel): no disparity to measure.
        gates["fairness_floor"] = (True, "fairness ratio undefined: fewer than two slices large enough to compare")
    else:
        fair = fairness >= policy.min_fairness_ratio
        gates["fairness_floor"] = (
            fair,
            f"fairness ratio {fairness:.4f} {'>=' if fair else 'is not >='} {policy.min_fairness_ratio}",
        )
    gates["mean_shift"] = _mean_shift_gate(candidate, champion, policy.max_mean_shift)
    return GateVerdict(passed=all(ok for ok, _ in gates.values()), gates=gates)


def _mean_shift_gate(candidate: Mapping[str, float], champion: Mapping[str, float] | None, bound: float) -> tuple[bool, str]:
    if champion is None:
        return True, "no champion to compare"
    from clv_platform.ml.shadow import relative_shift

    mean = _metric(candidate, MEAN_PREDICTION, "candidate")
    champion_mean = _metric(champion, MEAN_PREDICTION, "champion")
    shift = relative_shift(champion_mean, mean) if math.isfinite(mean) and math.isfinite(champion_mean) else math.nan
    within = abs(shift) <= bound  # False for a nan
    return within, (
        f"mean prediction {mean:.2f} against the champion's {champion_mean:.2f}: "
        f"shift {'undefined' if math.isnan(shift) else format(shift, '+.1%')} "
        f"{'within' if within else 'is beyond'} the bound of {bound:.0%} either way"
    )


def best_model(models: Mapping[str, Mapping[str, float]]) -> str:
    """The model that ranks best over MAE (lowest), Spearman and normalized Gini (highest).

    Each model gets its rank on each metric; the lowest rank sum wins, ties go to the lower MAE. A
    ``nan`` metric ranks last.

    Examples
    --------
    >>> best_model({"a": {"mae": 1.0, "spearman": 0.2, "normalized_gini": 0.2},
    ...             "b": {"mae": 2.0, "spearman": 0.5, "normalized_gini": 0.6}})
    'b'
    """
    if not models:
        raise ValueError("models must not be empty")
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame({name: {key: _metric(metrics, key, name) for key in GATE_METRICS} for name, metrics in models.items()}).T
    ranks = frame["mae"].rank(na_option="bottom") + sum(
        frame[key].rank(ascending=False, na_option="bottom") for key in ("spearman", "normalized_gini")
    )
    order = pd.DataFrame({"rank": ranks, "mae": frame["mae"].fillna(np.inf)}).sort_values(["rank", "mae"], kind="stable")
    return str(order.index[0])


@dataclass(frozen=True)
class ChampionDecision:
    """Which model scores after this evaluation, and why.

    Attributes
    ----------
    action
        ``promote`` (the candidate passed the gates: challenger, then champion), ``baseline`` (the best
        baseline becomes champion), or ``keep`` (the champion stays).
    model
        The model that will hold the ``champion`` alias: a rung name of this evaluation, or
        ``"champion"`` for the current one.
    reason
        One sentence for people.
    baseline_serves
        Whether the serving model is a baseline rather than a supervised model.
    """

    action: str
    model: str
    reason: str
    baseline_serves: bool


def decide_champion(
    candidate_name: str | None,
    gate_verdict: GateVerdict | None,
    champion: Mapping[str, float] | None,
    baselines: Mapping[str, Mapping[str, float]],
    *,
    champion_is_baseline: bool = False,
    policy: GatePolicy = GatePolicy(),
    no_candidate_reason: str = "no supervised candidate",
) -> ChampionDecision:
    """Who scores next: the candidate if it passed the gates, else the best baseline when it wins.

    Rules, in order:

    1. The candidate passed :func:`decide_challenger`: it is promoted (challenger, then champion).
    2. There is no champion yet (the first-model rule): the best baseline (:func:`best_model`) becomes
       champion, so the platform always scores.
    3. The best baseline beats the current champion by the policy's margins on MAE, Spearman and
       normalized Gini: it replaces the champion.
    4. Otherwise the champion stays.

    Parameters
    ----------
    candidate_name, gate_verdict
        The supervised candidate and the gates' verdict on it, or ``None`` for both when none was fitted
        (``no_candidate_reason`` says why, e.g. the history is too short for supervised training).
    champion
        The current champion's metrics on this evaluation window, or ``None``.
    baselines
        Baseline name -> metrics on the same window.
    champion_is_baseline
        Whether the current champion is a baseline rung (reported in :attr:`ChampionDecision.baseline_serves`).
    """
    if (candidate_name is None) != (gate_verdict is None):
        raise ValueError("candidate_name and gate_verdict must both be given or both be None")
    if gate_verdict is not None and gate_verdict.passed:
        return ChampionDecision("promote", candidate_name, f"{candidate_name} passed every gate and is promoted", False)
    why_not = (
        f"{candidate_name} was refused ({'; '.join(gate_verdict.failures)})" if gate_verdict is not None else no_candidate_reason
    )
    best = best_model(baselines)
    if champion is None:
        return ChampionDecision("baseline", best, f"{why_not}; no champion yet, so the best baseline {best} scores", True)
    failures = _comparison(baselines[best], champion, "champion", policy)
    if not failures:
        return ChampionDecision("baseline", best, f"{why_not}; the best baseline {best} beats the champion and scores", True)
    return ChampionDecision(
        "keep",
        "champion",
        f"{why_not}; the champion stays ({best} does not beat it: {'; '.join(failures)})",
        champion_is_baseline,
    )


__all__ = [
    "FAIRNESS_METRIC",
    "GATES",
    "GATE_METRICS",
    "MEAN_PREDICTION",
    "ChampionDecision",
    "GatePolicy",
    "GateVerdict",
    "best_model",
    "decide_challenger",
    "decide_champion",
]
