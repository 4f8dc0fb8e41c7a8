"""ml/rollout_analysis: once a rollout's label window has elapsed, did the challenger arm earn promotion?

Runs in the weekly job after scoring; with nothing to analyse yet it says so (and when the window ends)
and succeeds. The statistics and the recommendation rule are :mod:`clv_platform.ml.rollout_analysis`.
"""

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from clv_platform.lib.warehouse import markdown_table

ANALYSES_TABLE = "ml.rollout_analyses"


class RolloutAnalysisConfig(dg.Config):
    resamples: int = Field(default=1000, description="Bootstrap resamples per arm.")
    confidence: float = Field(default=0.95, description="Coverage of the bootstrap confidence intervals.")
    seed: int = Field(default=0, description="Bootstrap seed: the same scores and revenue give the same intervals.")
    min_customers_per_arm: int = Field(default=100, description="Fewest customers in each arm for a promote or rollback verdict.")


def _waiting(reason: str, **metadata) -> dg.MaterializeResult:
    from clv_platform.ml.rollout_analysis import KEEP_COLLECTING

    return dg.MaterializeResult(metadata={"recommendation": KEEP_COLLECTING, "reason": reason, **metadata})


@dg.asset(
    key=["ml", "rollout_analysis"],
    deps=[dg.AssetKey(["scoring", "clv_scores"]), dg.AssetKey(["intermediate", "int_customer_days"])],
    group_name="monitoring",
    kinds={"duckdb"},
    description=(
        "The latest canary / A-B scoring whose label window has elapsed: realized revenue against predictions per arm "
        "(MAE, Spearman, normalized Gini, bias with bootstrap intervals) and a recommendation: promote, rollback or "
        "keep collecting. Rows in ml.rollout_analyses."
    ),
)
def rollout_analysis(config: RolloutAnalysisConfig, warehouse: DuckDBResource) -> dg.MaterializeResult:
    from datetime import UTC, datetime

    import pandas as pd

    from clv_platform.lib.warehouse import replace_cutoff_rows
    from clv_platform.ml import rollout_analysis as ra

    with warehouse.get_connection() as con:
        rollouts = ra.rollout_cutoffs(con)
        if rollouts.empty:
            return _waiting("no rollout has scored a challenger arm yet (scoring.clv_scores has no 'challenger' rows)")
        state = ra.warehouse_state(con)
        elapsed = [c for c in rollouts["cutoff_date"] if state.elapsed(c)]
        if not elapsed:
            pending = pd.Timestamp(min(rollouts["cutoff_date"])).date()
            ends = state.window_end(pending)
            return _waiting(
                f"the label window of the rollout scored at {pending} runs to {ends} (exclusive); "
                f"transactions reach {state.last_transaction_date}",
                cutoff_date=str(pending),
                window_end_date=str(ends),
                last_transaction_date=str(state.last_transaction_date),
            )
        cutoff = pd.Timestamp(max(elapsed)).date()
        scored = ra.realized_revenue(con, cutoff, state.horizon_days, state.cap_quantile)
        try:
            analysis = ra.analyse(
                scored["realized_revenue"],
                scored["predicted_clv"],
                scored["arm"],
                resamples=config.resamples,
                confidence=config.confidence,
                seed=config.seed,
                min_customers=config.min_customers_per_arm,
            )
        except ValueError as error:
            raise dg.Failure(f"ml/rollout_analysis of the scoring at {cutoff}: {error}") from None
        versions = {
            arm: ",".join(sorted(scored.loc[scored["arm"] == arm, "model_version"].astype(str).unique())) for arm in ra.ARMS
        }
        table = analysis.table()
        table["model_version"] = table["arm"].map(versions).fillna("")
        rows = table.assign(
            cutoff_date=cutoff,
            analysed_at=datetime.now(UTC).replace(tzinfo=None),
            window_end_date=state.window_end(cutoff),
            horizon_days=state.horizon_days,
            is_primary=table["metric"] == ra.PRIMARY_METRIC,
            confidence=analysis.confidence,
            resamples=analysis.resamples,
            seed=analysis.seed,
            recommendation=analysis.recommendation,
            reason=analysis.reason,
        )
        stored = replace_cutoff_rows(con, ANALYSES_TABLE, rows, cutoff)
        batch = _score_batch_rollout(con, cutoff)

    shown = table[["metric", "arm", "model_version", "customers", "estimate", "ci_low", "ci_high"]].astype({"customers": object})
    shown.loc[shown["customers"].isna(), "customers"] = ""
    return dg.MaterializeResult(
        metadata={
            "recommendation": analysis.recommendation,
            "reason": analysis.reason,
            "cutoff_date": str(cutoff),
            "window_end_date": str(state.window_end(cutoff)),
            "primary_metric": ra.PRIMARY_METRIC,
            "customers": dg.MetadataValue.json(analysis.customers),
            "model_versions": dg.MetadataValue.json(versions),
            "rollout": dg.MetadataValue.json(batch),
            "rollouts_pending": len(rollouts) - len(elapsed),
            "dagster/row_count": stored,
            "metrics": dg.MetadataValue.md(markdown_table(shown, floatfmt=".4f")),
        }
    )


def _score_batch_rollout(con, cutoff) -> dict:
    """The rollout fields (mode, share, salt, challenger version) of the cutoff's latest score batch, if recorded."""
    try:
        found = con.execute(
            "select * from scoring.score_batches where cast(cutoff_date as date) = ? order by scored_at desc limit 1", [cutoff]
        ).df()
    except Exception as error:  # duckdb.CatalogException: no scoring recorded in this warehouse
        if "does not exist" in str(error):
            return {}
        raise
    if found.empty:
        return {}
    record = found.iloc[0]
    return {k: str(v) for k, v in record.items() if (k.startswith("rollout") or "challenger" in k) and v is not None}
