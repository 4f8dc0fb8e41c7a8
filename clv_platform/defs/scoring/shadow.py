"""scoring/shadow_scores: the challenger scores every customer of the latest batch beside the champion, unused.

What a person reads before promoting a challenger (``clv-platform model promote``): how far its mean prediction
moves, whether it ranks customers alike, picks the same best customers and keeps them in their value tier.
The comparison itself is :mod:`clv_platform.ml.shadow`; this asset reads the batch, runs both models, stores
the rows in ``scoring.shadow_scores`` and shows the comparison as metadata. With no challenger distinct from
the champion there is nothing to compare: it says so and succeeds, so the weekly job never fails for it.
"""

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from clv_platform.lib.resources import MlflowResource

SHADOW_TABLE = "scoring.shadow_scores"


class ShadowConfig(dg.Config):
    challenger_version: str = Field(
        default="",
        description="A registered version of the model to score beside the champion; empty = the one the challenger alias names.",
    )


def _challenger(config: ShadowConfig, model_name: str) -> tuple[str | None, str]:
    """The version to shadow and where it was named (``config`` or ``alias``); ``None`` when nothing names one."""
    from clv_platform.ml import registry

    wanted = config.challenger_version.strip().removeprefix("v")
    if wanted:
        versions = registry.version_rungs(model_name)
        if wanted not in versions:
            known = ", ".join(sorted(versions, key=lambda v: (len(v), v))) or "none"
            raise dg.Failure(
                f"ShadowConfig.challenger_version: model {model_name!r} has no version {wanted!r} (registered versions: {known})."
            )
        return wanted, "config"
    aliased = registry.get_alias_version(model_name, registry.CHALLENGER_ALIAS)
    return (str(aliased.version) if aliased is not None else None), "alias"


def _cut_points(con, cutoff) -> list[float]:
    """The value-tier cut points of the batch (``scoring.value_tiers`` at ``cutoff``), lowest tier's upper edge first."""
    import duckdb

    try:
        cursor = con.execute("select * from scoring.value_tiers where cutoff_date = ? limit 1", [cutoff])
    except duckdb.CatalogException:
        raise dg.Failure("Table scoring.value_tiers does not exist: materialize scoring/value_tiers first.") from None
    names = [d[0] for d in cursor.description]
    row = cursor.fetchone()
    if row is None:
        raise dg.Failure(f"Table scoring.value_tiers has no rows for cutoff {cutoff}: materialize scoring/value_tiers first.")
    # value_tier_table writes one <tier>_cut_point column per tier above the lowest, lowest first.
    return [float(value) for name, value in zip(names, row, strict=True) if name.endswith("_cut_point")]


def shadow_rows(features, champion_scores, challenger_scores, cut_points):
    """One row per customer: both versions, both predictions and both tiers at the batch's cut points."""
    import pandas as pd

    from clv_platform.ml.scoring import tiers_at

    champion = champion_scores["predicted_clv"].to_numpy(dtype="float64")
    challenger = challenger_scores["predicted_clv"].to_numpy(dtype="float64")
    return pd.DataFrame(
        {
            "customer_id": features["customer_id"].to_numpy(),
            "cutoff_date": features["cutoff_date"].to_numpy(),
            "model_name": champion_scores["model_name"].to_numpy(),
            "champion_version": champion_scores["model_version"].to_numpy(),
            "challenger_version": challenger_scores["model_version"].to_numpy(),
            "champion_prediction": champion,
            "challenger_prediction": challenger,
            "champion_tier": tiers_at(champion, cut_points).astype(str),
            "challenger_tier": tiers_at(challenger, cut_points).astype(str),
        }
    )


@dg.asset(
    key=["scoring", "shadow_scores"],
    deps=[dg.AssetKey(["scoring", "clv_scores"]), dg.AssetKey(["scoring", "value_tiers"])],
    group_name="scoring",
    kinds={"mlflow", "duckdb"},
    description=(
        "scoring.shadow_scores: every customer of the latest score batch scored by the challenger (its alias, or a "
        "configured version) beside the champion, never used; the comparison (mean shift, Spearman, top-decile overlap, "
        "tier moves) as metadata."
    ),
)
def shadow_scores(context: dg.AssetExecutionContext, config: ShadowConfig, warehouse: DuckDBResource, mlflow: MlflowResource):
    import math

    import pandas as pd

    from clv_platform.defs.scoring.assets import last_batch
    from clv_platform.lib.warehouse import replace_cutoff_rows
    from clv_platform.ml import registry, scoring, shadow

    mlflow.activate()
    with warehouse.get_connection() as con:
        batch = last_batch(con)
    cutoff = pd.Timestamp(batch.cutoff_date)
    champion_version = batch.model_version
    challenger_version, named_by = _challenger(config, mlflow.model_name)
    base = {"cutoff_date": batch.cutoff_date, "model_name": mlflow.model_name, "champion_version": champion_version}
    if challenger_version is None or challenger_version == champion_version:
        why = (
            f"no challenger distinct from the champion v{champion_version}: "
            + ("the challenger alias is not set" if challenger_version is None else f"the {named_by} names v{challenger_version}")
            + "; nothing to compare"
        )
        with warehouse.get_connection() as con:
            # Rows of an earlier challenger at this cutoff would describe a comparison that no longer holds.
            if con.execute(
                "select count(*) from information_schema.tables where table_schema = 'scoring' and table_name = 'shadow_scores'"
            ).fetchone()[0]:
                con.execute(f"delete from {SHADOW_TABLE} where cutoff_date = ?", [cutoff])
        context.log.info(why)
        return dg.MaterializeResult(
            metadata={**base, "dagster/row_count": 0, "challenger_version": "", "compared": False, "reason": why}
        )

    with warehouse.get_connection() as con:
        features = con.execute("select * from marts.customer_features order by customer_id").df()
        cut_points = _cut_points(con, cutoff)
    if features.empty or pd.Timestamp(features["cutoff_date"].iloc[0]) != cutoff:
        found = "none" if features.empty else str(pd.Timestamp(features["cutoff_date"].iloc[0]).date())
        raise dg.Failure(
            f"marts.customer_features is at cutoff {found}, but the latest score batch is at {batch.cutoff_date}: "
            "materialize scoring/clv_scores first."
        )
    active = scoring.active_customers(features, batch.active_within_days)
    runs = {}
    for version in (champion_version, challenger_version):
        model = registry.load_model_version(mlflow.model_name, version)
        runs[version] = scoring.score_customers(model, active, model_name=mlflow.model_name, model_version=version)
    rows = shadow_rows(active, runs[champion_version], runs[challenger_version], cut_points)
    comparison = shadow.compare(rows["champion_prediction"], rows["challenger_prediction"], cut_points)
    with warehouse.get_connection() as con:
        stored = replace_cutoff_rows(con, SHADOW_TABLE, rows, cutoff)

    rungs = registry.version_rungs(mlflow.model_name)
    context.log.info(
        f"shadow v{challenger_version} against champion v{champion_version} on {comparison.customers} customers: "
        f"mean shift {comparison.mean_shift:+.1%}, Spearman {comparison.spearman:.3f}, "
        f"top-decile overlap {comparison.top_decile_overlap:.1%}"
    )
    return dg.MaterializeResult(
        metadata={
            **base,
            "dagster/row_count": stored,
            "champion_rung": rungs.get(champion_version, ""),
            "challenger_version": challenger_version,
            "challenger_rung": rungs.get(challenger_version, ""),
            "challenger_named_by": named_by,
            "compared": True,
            "active_within_days": batch.active_within_days,
            # Spearman is nan when either model predicts one value for everybody.
            **{name: (None if isinstance(v, float) and math.isnan(v) else v) for name, v in comparison.metrics().items()},
            "cut_points": dg.MetadataValue.json(cut_points),
            "tier_moves": dg.MetadataValue.md(comparison.tier_moves_markdown()),
        }
    )
