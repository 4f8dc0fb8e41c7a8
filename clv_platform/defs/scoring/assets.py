"""scoring/clv_scores (every active customer, scored by the champion, or by the challenger for its arm under a canary or A/B
rollout), its value tiers, and segments.

Each scoring is recorded in ``scoring.score_batches`` (:mod:`clv_platform.ml.batches`): the steps after it read
the cutoff just scored and the activity window from there.
"""

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from clv_platform.lib.resources import MlflowResource
from clv_platform.lib.warehouse import markdown_table

SCORES_KEY = dg.AssetKey(["scoring", "clv_scores"])
CHAMPION_KEY = dg.AssetKey(["ml", "champion"])


class ScoringConfig(dg.Config):
    active_within_days: int = Field(
        default=365, description="Score customers whose last purchase is at most this many days before the cutoff."
    )


@dg.asset(
    key=SCORES_KEY,
    deps=[dg.AssetKey(["marts", "customer_features"]), CHAMPION_KEY],
    group_name="scoring",
    kinds={"mlflow", "duckdb"},
    description=(
        "One row per active customer per scoring cutoff: predicted horizon revenue, the rollout arm and the model version "
        "(any rung: the champion, or the challenger for its arm under a canary or A/B rollout) that made it; each scoring "
        "recorded in scoring.score_batches."
    ),
)
def clv_scores(context: dg.AssetExecutionContext, config: ScoringConfig, warehouse: DuckDBResource, mlflow: MlflowResource):
    from datetime import UTC, datetime

    import pandas as pd

    from clv_platform.lib.warehouse import replace_cutoff_rows
    from clv_platform.ml import batches, registry, scoring
    from clv_platform.ml.ladder import BASELINES
    from clv_platform.ml.rollout import CHALLENGER_ARM, CHAMPION_ARM, Rollout, assign_arms

    mlflow.activate()
    champion_version, challenger_version, rollout = registry.serving_state(mlflow.model_name)
    if champion_version is None:
        raise dg.Failure(f"No model carries the 'champion' alias on {mlflow.model_name!r}: materialize ml/champion first.")
    champion = registry.get_alias_version(mlflow.model_name, registry.CHAMPION_ALIAS)
    models = {CHAMPION_ARM: (registry.load_model_version(mlflow.model_name, champion_version), champion_version)}
    # Only a canary or A/B rollout with a challenger distinct from the champion splits the customers.
    splitting = rollout.splits and challenger_version is not None
    if splitting:
        models[CHALLENGER_ARM] = (registry.load_model_version(mlflow.model_name, challenger_version), challenger_version)
    rung = champion.tags.get("rung", "")

    with warehouse.get_connection() as con:
        features = con.execute("select * from marts.customer_features").df()
        active = scoring.active_customers(features, config.active_within_days).reset_index(drop=True)
        arms = assign_arms(active["customer_id"], rollout if splitting else Rollout())
        scores = scoring.score_arms(models, active, arms, mlflow.model_name)
        cutoff = scores["cutoff_date"].iloc[0]  # score_customers refuses an empty population
        stored = replace_cutoff_rows(con, "scoring.clv_scores", scores, cutoff)
        batch = batches.ScoreBatch(
            cutoff_date=str(pd.Timestamp(cutoff).date()),
            scored_at=datetime.now(UTC).replace(tzinfo=None).isoformat(),
            active_within_days=config.active_within_days,
            model_name=mlflow.model_name,
            model_version=champion_version,
            model_rung=rung,
            customers_scored=stored,
            rollout_mode=rollout.mode,
            rollout_share=rollout.share,
            rollout_salt=rollout.salt,
            challenger_version=challenger_version or "",
            challenger_customers=int((arms == CHALLENGER_ARM).sum()),
        )
        batches.append(con, batches.SCORE_BATCHES_TABLE, batch)

    top = scores.nlargest(10, "predicted_clv").merge(
        active[["customer_id", "frequency", "recency", "T", "monetary_value"]], on="customer_id"
    )[["customer_id", "predicted_clv", "frequency", "recency", "T", "monetary_value"]]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": stored,
            "cutoff_date": batch.cutoff_date,
            "customers_with_features": len(features),
            "customers_scored": len(scores),
            "customers_inactive_skipped": len(features) - len(active),
            "active_within_days": config.active_within_days,
            "model_name": mlflow.model_name,
            "model_version": champion_version,
            "model_uri": f"models:/{mlflow.model_name}/{champion_version}",
            "rollout": rollout.describe(),
            "challenger_version": batch.challenger_version,
            "challenger_customers": batch.challenger_customers,
            "model_rung": rung,
            "baseline_serves": rung in BASELINES,
            "predicted_value_total": float(scores["predicted_clv"].sum()),
            "top_customers": dg.MetadataValue.md(markdown_table(top)),
        }
    )


def last_batch(con):
    """The latest scoring recorded in ``scoring.score_batches``; ``dg.Failure`` if there is none."""
    from clv_platform.ml import batches

    try:
        return batches.latest(con, batches.SCORE_BATCHES_TABLE, batches.ScoreBatch)
    except LookupError as error:
        raise dg.Failure(f"No scoring recorded ({error}): materialize scoring/clv_scores first.") from None


def scores_at(con, cutoff):
    """``scoring.clv_scores`` rows of ``cutoff``, by customer; ``dg.Failure`` if none."""
    import duckdb
    import pandas as pd

    try:
        scores = con.execute("select * from scoring.clv_scores where cutoff_date = ? order by customer_id", [cutoff]).df()
    except duckdb.CatalogException:
        raise dg.Failure("Table scoring.clv_scores does not exist: materialize scoring/clv_scores first.") from None
    if scores.empty:
        at = pd.Timestamp(cutoff).date()
        raise dg.Failure(f"Table scoring.clv_scores has no rows for cutoff {at}: materialize scoring/clv_scores first.")
    return scores


class ValueTierConfig(dg.Config):
    medium_tier_quantile: float = Field(default=0.5, description="Predicted-value quantile above which the Medium tier starts.")
    high_tier_quantile: float = Field(default=0.9, description="Predicted-value quantile above which the High tier starts.")


@dg.asset(
    key=["scoring", "value_tiers"],
    deps=[SCORES_KEY],
    group_name="scoring",
    kinds={"duckdb"},
    description=(
        "scoring.value_tiers: one row per scored customer per cutoff, Low / Medium / High at configurable quantiles "
        "of the predicted CLV of the cutoff just scored, with the cut points and the model version of the scores."
    ),
)
def value_tiers(context: dg.AssetExecutionContext, config: ValueTierConfig, warehouse: DuckDBResource):
    import pandas as pd

    from clv_platform.lib.warehouse import replace_cutoff_rows
    from clv_platform.ml import scoring

    quantiles = (config.medium_tier_quantile, config.high_tier_quantile)
    with warehouse.get_connection() as con:
        scores = scores_at(con, pd.Timestamp(last_batch(con).cutoff_date))
        try:
            tiers = scoring.value_tier_table(scores, quantiles)
        except ValueError as error:
            raise dg.Failure(f"ValueTierConfig: {error}") from None
        cutoff = tiers["cutoff_date"].iloc[0]
        stored = replace_cutoff_rows(con, "scoring.value_tiers", tiers, cutoff)

    summary = scoring.tier_summary(tiers)
    cut_points = {c.removesuffix("_cut_point"): float(tiers[c].iloc[0]) for c in tiers.columns if c.endswith("_cut_point")}
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": stored,
            "cutoff_date": str(pd.Timestamp(cutoff).date()),
            "model_name": str(tiers["model_name"].iloc[0]),
            "model_version": str(tiers["model_version"].iloc[0]),
            "tier_quantiles": dg.MetadataValue.json(dict(zip(cut_points, quantiles, strict=True))),
            "cut_points": dg.MetadataValue.json(cut_points),
            "tier_counts": dg.MetadataValue.json(
                {t: int(n) for t, n in zip(summary["value_tier"], summary["customers"], strict=True)}
            ),
            "value_share": dg.MetadataValue.json(
                {t: round(float(v), 6) for t, v in zip(summary["value_tier"], summary["value_share"], strict=True)}
            ),
            "tiers": dg.MetadataValue.md(markdown_table(summary, floatfmt=".3f")),
        }
    )


class SegmentConfig(dg.Config):
    n_segments: int = Field(default=4, description="KMeans k: how many RFM segments.")
    seed: int = Field(default=0, description="KMeans random state: the same data gives the same segments.")


@dg.asset(
    key=["scoring", "customer_segments"],
    deps=[dg.AssetKey(["marts", "customer_features"])],
    group_name="scoring",
    kinds={"scikitlearn", "duckdb"},
    description=(
        "scoring.customer_segments: every customer at the scoring cutoff in a KMeans segment of standardized RFM, "
        "segment 0 the highest spend."
    ),
)
def customer_segments(config: SegmentConfig, warehouse: DuckDBResource):
    from clv_platform.lib.warehouse import replace_table
    from clv_platform.ml.segments import fit_segments, segment_profiles

    with warehouse.get_connection() as con:
        features = con.execute("select * from marts.customer_features order by customer_id").df()
        segments = fit_segments(features, config.n_segments, seed=config.seed)
        segments.insert(1, "cutoff_date", features["cutoff_date"].to_numpy())
        stored = replace_table(con, "scoring.customer_segments", segments)
    profiles = segment_profiles(segments)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": stored,
            "cutoff_date": str(features["cutoff_date"].iloc[0]),
            "n_segments": config.n_segments,
            "segment_sizes": dg.MetadataValue.json(
                {str(k): int(v) for k, v in zip(profiles["segment"], profiles["customers"], strict=True)}
            ),
            "segment_profiles": dg.MetadataValue.md(markdown_table(profiles)),
        }
    )
