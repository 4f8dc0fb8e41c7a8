"""Did the challenger arm of a rollout earn promotion? Realized revenue against predictions, per arm.

A canary or A/B rollout scores each customer with the champion or the challenger (``scoring.clv_scores.arm``).
Once the label window of that scoring has elapsed, every scored customer's realized revenue is known, and
each arm gets MAE, Spearman, normalized Gini (:mod:`clv_platform.ml.metrics`) and aggregate bias, each with
a percentile bootstrap confidence interval, and the challenger-minus-champion difference of each with its
interval. The arms hold different customers, so each arm is resampled independently and the difference
is taken resample by resample.

The recommendation rule (:func:`recommend`):

- fewer than ``min_customers`` (default ``MIN_CUSTOMERS_PER_ARM`` = 100) in either arm: ``keep collecting``.
  Below about a hundred customers the revenue's heavy tail (half the customers buy nothing, a few buy
  a lot) makes percentile intervals too narrow to trust.
- the challenger is significantly worse on any metric (the interval of the difference lies wholly on the
  worse side): ``rollback``, naming the metric, the primary one first.
- else significantly better on the primary metric: ``promote``.
- else ``keep collecting``: no difference shown yet.

The primary metric is MAE: the model's output is an amount (tiers, totals and campaign budgets use it,
not only its order), it is the first of the registry gates, and it is a mean over customers, so the
difference between two arms of different customers has a well-behaved interval; the Gini of a 5 % canary
arm is far noisier. Bias counts by its size: the difference reported for ``bias`` is
``|bias challenger| - |bias champion|`` (positive = the challenger is further off in total).

Realized revenue uses the training label's definition (``marts.training_examples.future_revenue``): the
customer's net revenue of the days ``[cutoff, cutoff + horizon_days)`` from ``intermediate.int_customer_days``,
each day's orders and cancellations capped at the cutoff's order-value cap (``int_order_value_caps``: the
quantile of the orders before the cutoff), summed, floored at 0. The window has elapsed when the
transactions reach its last day, as for the training cutoffs (``int_cutoffs``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from clv_platform.ml import metrics

ARMS = ("champion", "challenger")
METRICS = ("mae", "spearman", "normalized_gini", "bias")
PRIMARY_METRIC = "mae"
# Metrics where a lower value is better (bias by its absolute value); the others are better higher.
LOWER_IS_BETTER = frozenset({"mae", "bias"})
MIN_CUSTOMERS_PER_ARM = 100
RESAMPLES = 1000
CONFIDENCE = 0.95
PROMOTE, ROLLBACK, KEEP_COLLECTING = "promote", "rollback", "keep collecting"
# Bootstrap cells (resamples x customers) computed at once: bounds memory at about 8 arrays of this size.
_CELLS_PER_CHUNK = 2_000_000


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its percentile bootstrap interval (``nan`` where undefined)."""

    value: float
    ci_low: float
    ci_high: float

    def excludes_zero(self) -> bool:
        return bool(self.ci_low > 0 or self.ci_high < 0)


@dataclass(frozen=True)
class MetricComparison:
    """One metric on each arm and the challenger-minus-champion difference (of ``|bias|`` for bias)."""

    metric: str
    champion: Estimate
    challenger: Estimate
    difference: Estimate

    def significantly_worse(self) -> bool:
        d = self.difference
        return bool(d.ci_low > 0) if self.metric in LOWER_IS_BETTER else bool(d.ci_high < 0)

    def significantly_better(self) -> bool:
        d = self.difference
        return bool(d.ci_high < 0) if self.metric in LOWER_IS_BETTER else bool(d.ci_low > 0)


@dataclass(frozen=True)
class RolloutAnalysis:
    """Per-arm metrics with intervals, and the recommendation with its one-line reason."""

    customers: dict[str, int]
    comparisons: tuple[MetricComparison, ...]
    recommendation: str
    reason: str
    confidence: float
    resamples: int
    seed: int

    def table(self) -> pd.DataFrame:
        """One row per metric and arm (``champion``, ``challenger``, ``difference``)."""
        rows = []
        for comparison in self.comparisons:
            for arm in (*ARMS, "difference"):
                estimate = getattr(comparison, arm)
                customers = self.customers[arm] if arm in ARMS else None
                rows.append(
                    {
                        "metric": comparison.metric,
                        "arm": arm,
                        "customers": customers,
                        "estimate": estimate.value,
                        "ci_low": estimate.ci_low,
                        "ci_high": estimate.ci_high,
                    }
                )
        return pd.DataFrame(rows).astype({"customers": "Int64"})


def _groups(score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows by ``score`` descending: the order, where each tie group starts in it, and each row's group."""
    order = np.argsort(-score, kind="stable")
    ordered = score[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    group_of_row = np.empty(score.size, dtype="int64")
    group_of_row[order] = np.cumsum(np.concatenate([[True], ordered[1:] != ordered[:-1]])) - 1
    return order, starts, group_of_row


class _Arm:
    """One arm's actuals and predictions, with the weighted metrics a bootstrap resample needs.

    A resample is a weight per customer (how often it was drawn). Sorting does not change under
    resampling, so both orders are computed once and each resample costs a few passes over the rows.
    Ties follow :mod:`clv_platform.ml.metrics`: a tie group shares its mean actual and its average rank.
    """

    def __init__(self, true: np.ndarray, pred: np.ndarray):
        # Rows kept in prediction order: the weights of a resample need no reordering for it.
        order = np.argsort(-pred, kind="stable")
        self.true, self.pred = true[order], pred[order]
        _, starts, group_of_row = _groups(self.pred)
        self.by_pred = (None, starts, group_of_row)
        self.by_true = _groups(self.true)
        self.true_of_group = self.true[self.by_true[0]][self.by_true[1]]

    def point(self) -> dict[str, float]:
        true, pred = self.true, self.pred
        return {
            "mae": metrics.mae(true, pred),
            "spearman": metrics.spearman(true, pred),
            "normalized_gini": metrics.normalized_gini(true, pred),
            "bias": metrics.aggregate_bias(true, pred),
        }

    @staticmethod
    def _group_sums(values: np.ndarray, groups) -> np.ndarray:
        """Sums of ``values`` (resamples x rows) over each tie group, groups in the order's sequence."""
        order, starts, _ = groups
        values = values if order is None else values[:, order]
        return values if starts.size == values.shape[1] else np.add.reduceat(values, starts, axis=1)

    @staticmethod
    def _gini(w: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Gini from the weight ``w`` and weighted actual ``v`` of each tie group, best score first."""
        total, n = v.sum(axis=1), w.sum(axis=1)
        before = np.cumsum(v, axis=1) - v
        with np.errstate(invalid="ignore", divide="ignore"):
            captured = (w * before + v * (w + 1) / 2).sum(axis=1) / total
            return np.where(total > 0, (captured - (n + 1) / 2) / n, np.nan)

    @staticmethod
    def _centred_ranks(w: np.ndarray, groups) -> np.ndarray:
        """Each row's average rank among the weighted rows, minus the mean rank."""
        _, starts, group_of_row = groups
        ranks = np.cumsum(w, axis=1) - w + (w + 1) / 2 - ((w.sum(axis=1) + 1) / 2)[:, None]
        return ranks if starts.size == group_of_row.size else ranks[:, group_of_row]

    def resampled(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """Each metric for each row of ``weights`` (resamples x customers)."""
        true, pred = self.true, self.pred
        n = weights.sum(axis=1)
        weighted_true = weights * true
        w_pred, w_true = self._group_sums(weights, self.by_pred), self._group_sums(weights, self.by_true)
        gini = self._gini(w_pred, self._group_sums(weighted_true, self.by_pred))
        perfect = self._gini(w_true, w_true * self.true_of_group)  # a tie group of actuals has one value
        rank_pred, rank_true = self._centred_ranks(w_pred, self.by_pred), self._centred_ranks(w_true, self.by_true)
        cov = (weights * rank_pred * rank_true).sum(axis=1)
        spread = np.sqrt((weights * rank_pred**2).sum(axis=1) * (weights * rank_true**2).sum(axis=1))
        total_true = weighted_true.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return {
                "mae": (weights * np.abs(true - pred)).sum(axis=1) / n,
                "spearman": np.where(spread > 0, cov / spread, np.nan),
                "normalized_gini": np.where(np.isfinite(perfect) & (perfect != 0), gini / perfect, np.nan),
                "bias": np.where(total_true > 0, (weights * pred).sum(axis=1) / total_true - 1, np.nan),
            }


def bootstrap_metrics(true, pred, *, resamples: int = RESAMPLES, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Each metric of ``resamples`` bootstrap resamples of one arm.

    A resample weights each customer by a Poisson(1) count (the Poisson bootstrap: drawing with
    replacement, without the random scatter of a multinomial draw, which dominated the cost at a million
    customers). Vectorised in chunks of resamples; ``rng`` makes it reproducible.

    Examples
    --------
    >>> draws = bootstrap_metrics([0, 10, 20, 30], [1, 9, 22, 30], resamples=5, rng=np.random.default_rng(0))
    >>> sorted(draws), draws["mae"].shape
    (['bias', 'mae', 'normalized_gini', 'spearman'], (5,))
    """
    true, pred = metrics._as_pair(true, pred)
    arm = _Arm(true, pred)
    n = true.size
    chunk = max(1, _CELLS_PER_CHUNK // n)
    parts: list[dict[str, np.ndarray]] = []
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        parts.append(arm.resampled(rng.poisson(1.0, size=(size, n)).astype("float64")))
    return {metric: np.concatenate([part[metric] for part in parts]) for metric in METRICS}


def _interval(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    if not np.isfinite(draws).any():
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2 * 100
    low, high = np.nanpercentile(draws, [tail, 100 - tail])
    return float(low), float(high)


def _difference(metric: str, champion: float | np.ndarray, challenger: float | np.ndarray):
    if metric == "bias":
        return np.abs(challenger) - np.abs(champion)
    return np.subtract(challenger, champion)


def analyse(
    realized,
    predicted,
    arms,
    *,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
    min_customers: int = MIN_CUSTOMERS_PER_ARM,
) -> RolloutAnalysis:
    """Compare the arms of one scoring: metrics with bootstrap intervals, differences, recommendation.

    Parameters
    ----------
    realized, predicted
        Each scored customer's realized revenue over the label window and its predicted CLV.
    arms
        ``'champion'`` or ``'challenger'`` for each customer.
    resamples, confidence, seed
        Bootstrap resamples per arm, the interval's coverage, and the seed that makes it reproducible.
    min_customers
        Fewest customers in each arm for a ``promote`` or ``rollback`` verdict.
    """
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    true, pred = metrics._as_pair(realized, predicted)
    labels = np.asarray(arms, dtype="object").ravel()
    if labels.size != true.size:
        raise ValueError(f"arms must have one value per customer, got {labels.size} for {true.size}")
    unknown = sorted({str(v) for v in labels} - set(ARMS))
    if unknown:
        raise ValueError(f"arms must be 'champion' or 'challenger', got {unknown}")
    customers = {arm: int((labels == arm).sum()) for arm in ARMS}
    rng = np.random.default_rng(seed)
    points, draws = {}, {}
    for arm in ARMS:
        mask = labels == arm
        if customers[arm] == 0:
            points[arm] = dict.fromkeys(METRICS, float("nan"))
            draws[arm] = {m: np.full(resamples, np.nan) for m in METRICS}
            continue
        points[arm] = _Arm(true[mask], pred[mask]).point()
        draws[arm] = bootstrap_metrics(true[mask], pred[mask], resamples=resamples, rng=rng)
    comparisons = []
    for metric in METRICS:
        estimates = {arm: Estimate(points[arm][metric], *_interval(draws[arm][metric], confidence)) for arm in ARMS}
        difference = _difference(metric, points["champion"][metric], points["challenger"][metric])
        difference_draws = _difference(metric, draws["champion"][metric], draws["challenger"][metric])
        comparisons.append(
            MetricComparison(
                metric,
                estimates["champion"],
                estimates["challenger"],
                Estimate(float(difference), *_interval(difference_draws, confidence)),
            )
        )
    recommendation, reason = recommend(tuple(comparisons), customers, min_customers=min_customers, confidence=confidence)
    return RolloutAnalysis(customers, tuple(comparisons), recommendation, reason, confidence, resamples, seed)


def _describe(comparison: MetricComparison, confidence: float) -> str:
    name = "|bias|" if comparison.metric == "bias" else comparison.metric
    d = comparison.difference
    return (
        f"{name} challenger {comparison.challenger.value:.4g} vs champion {comparison.champion.value:.4g}: "
        f"difference {d.value:+.4g} ({confidence:.0%} CI {d.ci_low:+.4g} to {d.ci_high:+.4g})"
    )


def recommend(
    comparisons: tuple[MetricComparison, ...], customers: dict[str, int], *, min_customers: int, confidence: float
) -> tuple[str, str]:
    """``promote`` | ``rollback`` | ``keep collecting`` and a one-line reason naming the numbers (rule: module doc)."""
    small = {arm: n for arm, n in customers.items() if n < min_customers}
    if small:
        counts = ", ".join(f"{arm} {n}" for arm, n in customers.items())
        return KEEP_COLLECTING, f"too few customers for a verdict ({counts}); each arm needs at least {min_customers}"
    by_metric = {c.metric: c for c in comparisons}
    primary = by_metric[PRIMARY_METRIC]
    worse = sorted((c for c in comparisons if c.significantly_worse()), key=lambda c: c.metric != PRIMARY_METRIC)
    if worse:
        return ROLLBACK, "challenger significantly worse: " + "; ".join(_describe(c, confidence) for c in worse)
    if primary.significantly_better():
        return PROMOTE, f"challenger significantly better, and not worse on any other metric: {_describe(primary, confidence)}"
    return KEEP_COLLECTING, f"no significant difference yet: {_describe(primary, confidence)}"


# The label rule of marts.training_examples (and int_order_value_caps, macro capped_day_values) for one
# cutoff the warehouse's current build may not hold: the cap is the configured quantile of the orders
# before the cutoff; each day's purchases and cancellations are capped at it (as DECIMAL, so sums are
# exact); the window's net value is floored at 0. Parity with future_revenue is tested on every training cutoff.
_REALIZED_SQL = """
with

scored as (
    select customer_id, arm, model_version, predicted_clv
    from scoring.clv_scores
    where cast(cutoff_date as date) = $cutoff and arm in ('champion', 'challenger')
),

cap as (
    select
        case when $cap_quantile is null then null else
            cast(percentile_cont($cap_quantile) within group (order by cast(gross_purchase_value as double)) as double)
        end as cap_value
    from intermediate.int_customer_days
    where is_purchase_day and activity_date < $cutoff
),

label_days as (
    select
        days.customer_id,
        days.net_value - days.gross_purchase_value - days.cancelled_value
        + case when cap.cap_value is not null and days.gross_purchase_value > cap.cap_value
            then cast(cap.cap_value as decimal(24, 10)) else days.gross_purchase_value end
        + case when cap.cap_value is not null and days.cancelled_value < -cap.cap_value
            then -cast(cap.cap_value as decimal(24, 10)) else days.cancelled_value end as net_value
    from intermediate.int_customer_days as days
    cross join cap
    where
        days.activity_date >= $cutoff
        and days.activity_date < $window_end
        and days.customer_id in (select scored.customer_id from scored)
),

revenue as (
    select customer_id, cast(sum(net_value) as double) as net_value
    from label_days
    group by customer_id
)

select
    scored.customer_id,
    scored.arm,
    scored.model_version,
    scored.predicted_clv,
    cast(case when revenue.net_value > 0 then revenue.net_value else 0 end as double) as realized_revenue
from scored
left join revenue on revenue.customer_id = scored.customer_id
order by scored.customer_id
"""


def realized_revenue(con, cutoff, horizon_days: int, cap_quantile: float | None) -> pd.DataFrame:
    """Each customer scored with an arm at ``cutoff``: arm, version, prediction and realized revenue.

    The revenue is summed inside DuckDB: one row per scored customer comes back, whatever the number of
    transactions. ``cap_quantile`` is the build's ``order_value_cap_quantile`` (``None``: no capping).
    """
    start = pd.Timestamp(cutoff).date()
    window_end = (pd.Timestamp(start) + pd.Timedelta(days=int(horizon_days))).date()
    params = {"cutoff": start, "window_end": window_end, "cap_quantile": cap_quantile}
    return con.execute(_REALIZED_SQL, params).df()


@dataclass(frozen=True)
class WarehouseState:
    """What the warehouse says about label windows: the build's horizon, cap quantile and last transaction day."""

    horizon_days: int
    cap_quantile: float | None
    last_transaction_date: object  # datetime.date, or None with no transactions

    def window_end(self, cutoff):
        """The first day after the label window of ``cutoff`` (the window is ``[cutoff, window_end)``)."""
        return (pd.Timestamp(cutoff) + pd.Timedelta(days=self.horizon_days)).date()

    def elapsed(self, cutoff) -> bool:
        """Whether the transactions reach the window's last day (as for the training cutoffs)."""
        last = self.last_transaction_date
        return last is not None and pd.Timestamp(last) >= pd.Timestamp(self.window_end(cutoff)) - pd.Timedelta(days=1)


def warehouse_state(con) -> WarehouseState:
    """The current build's horizon and cap quantile (``intermediate``) and its last transaction date."""
    horizon, quantile = con.execute(
        """select max(cutoffs.horizon_days), max(caps.cap_quantile)
           from intermediate.int_cutoffs as cutoffs
           left join intermediate.int_order_value_caps as caps on caps.cutoff_date = cutoffs.cutoff_date"""
    ).fetchone()
    if horizon is None:
        raise LookupError("intermediate.int_cutoffs has no rows: build the features first")
    last = con.execute("select max(invoice_date) from intermediate.int_transaction_lines").fetchone()[0]
    return WarehouseState(int(horizon), None if quantile is None else float(quantile), last)


def rollout_cutoffs(con) -> pd.DataFrame:
    """Cutoffs of ``scoring.clv_scores`` with a challenger arm, newest first: ``cutoff_date``, customers per arm.

    Empty when the table or its ``arm`` column does not exist (no rollout ever scored).
    """
    columns = {
        row[0]
        for row in con.execute(
            "select column_name from information_schema.columns where table_schema = 'scoring' and table_name = 'clv_scores'"
        ).fetchall()
    }
    if "arm" not in columns:
        return pd.DataFrame({"cutoff_date": [], "champion": [], "challenger": []})
    return con.execute(
        """select cast(cutoff_date as date) as cutoff_date,
                  count(*) filter (where arm = 'champion') as champion,
                  count(*) filter (where arm = 'challenger') as challenger
           from scoring.clv_scores
           group by cast(cutoff_date as date)
           having count(*) filter (where arm = 'challenger') > 0
           order by cutoff_date desc"""
    ).df()
