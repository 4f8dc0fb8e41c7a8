"""scoring/clv_scores: every active customer, scored by the version the champion alias names."""


import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from clv_platform.lib.resources import MlflowResource
from clv_platform.lib.warehouse import markdown_table


class ScoringConfig(dg.Config):
    active_within_days: int = Field(default=365, description="Score customers whose last purchase is at most this many days before the cutoff.")
    medium_tier_quantile: float = Field(default=0.5, description="Predicted-value quantile where the Medium tier starts.")
    high_tier_quantile: float = Field(default=0.9, description="Predicted-value quantile where the High tier starts.")


@dg.asset(
    key=["scoring", "clv_scores"],
    deps=[dg.AssetKey(["marts", "customer_features"]), dg.AssetKey(["ml", "clv_model"])],
    group_name="scoring",
    kinds={"mlflow", "duckdb"},
    description="One row per active customer per scoring cutoff: predicted horizon revenue, value tier, and the model version (any rung: the champion) that made it.",
)
def clv_scores(context: dg.AssetExecutionContext, config: ScoringConfig, warehouse: DuckDBResource, mlflow: MlflowResource):
    from clv_platform.ml import registry, scoring

    mlflow.activate()
    champion = registry.champion_version(mlflow.model_name)
    if champion is None:
        raise dg.Failure(f"No model carries the 'champion' alias on {mlflow.model_name!r}: materialize ml/clv_model first.")
    model = registry.load_model_version(mlflow.model_name, champion.version)

    with warehouse.get_connection() as con:
        features = con.execute("select * from marts.customer_features").df()
        active = scoring.active_customers(features, config.active_within_days)
        scores = scoring.score_customers(
            model, active, model_name=mlflow.model_name, model_version=champion.version,
            tiers=(config.medium_tier_quantile, config.high_tier_quantile),
        )
        cutoff = scores["cutoff_date"].iloc[0] if len(scores) else None
        con.execute("create schema if not exists scoring")
        con.register("_scores", scores)
        con.execute("begin transaction")
        # One row per customer per cutoff: rescoring a cutoff replaces it, other weeks stay as history.
        con.execute("create table if not exists scoring.clv_scores as select * from _scores limit 0")
        con.execute("delete from scoring.clv_scores where cutoff_date = ?", [cutoff])
        con.execute("insert into scoring.clv_scores by name select * from _scores")
        con.execute("commit")
        con.unregister("_scores")
        stored = con.execute("select count(*) from scoring.clv_scores where cutoff_date = ?", [cutoff]).fetchone()[0]

    top = scores.nlargest(10, "predicted_clv").merge(
        active[["customer_id", "frequency", "recency", "T", "monetary_value"]], on="customer_id"
    )[["customer_id", "predicted_clv", "value_tier", "frequency", "recency", "T", "monetary_value"]]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": stored,
            "cutoff_date": str(cutoff),
            "customers_with_features": len(features),
            "customers_scored": len(scores),
            "customers_inactive_skipped": len(features) - len(active),
            "active_within_days": config.active_within_days,
            "model_name": mlflow.model_name,
            "model_version": str(champion.version),
            "model_uri": f"models:/{mlflow.model_name}/{champion.version}",
            "model_rung": champion.tags.get("rung", ""),
            "baseline_serves": champion.tags.get("rung", "") in ("heuristic", "linear", "btyd"),
            "predicted_value_total": float(scores["predicted_clv"].sum()),
            "tier_counts": dg.MetadataValue.json(scores["value_tier"].value_counts().to_dict()),
            "top_customers": dg.MetadataValue.md(markdown_table(top)),
        }
    )


class SegmentConfig(dg.Config):
    n_segments: int = Field(default=4, description="KMeans k: how many RFM segments.")
    seed: int = Field(default=0, description="KMeans random state: the same data gives the same segments.")


@dg.asset(
    key=["ml", "customer_segments"],
    deps=[dg.AssetKey(["marts", "customer_features"])],
    group_name="scoring",
    kinds={"scikitlearn", "duckdb"},
    description="scoring.customer_segments: every customer at the scoring cutoff in a KMeans segment of standardized RFM, segment 0 the highest spend.",
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
            "segment_sizes": dg.MetadataValue.json({str(k): int(v) for k, v in zip(profiles["segment"], profiles["customers"])}),
            "segment_profiles": dg.MetadataValue.md(markdown_table(profiles)),
        }
    )
