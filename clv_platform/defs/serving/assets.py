"""serving/online_features: the latest cutoff's scores and features of every active customer, for the scoring API.

The API loads the snapshot in memory and never opens the warehouse, which takes one writer. Layout, write
order and the online feature build: ``clv_platform/ml/online.py``.
"""

import dagster as dg
from dagster_duckdb import DuckDBResource

from clv_platform import settings
from clv_platform.lib.resources import MlflowResource

# What a snapshot is made of, read at the cutoff of the latest scores.
_SNAPSHOT_QUERIES = {
    "scores": "select * from scoring.clv_scores where cutoff_date = ? order by customer_id",
    "tiers": "select * from scoring.value_tiers where cutoff_date = ?",
    "explanations": "select * from scoring.clv_explanations where cutoff_date = ?",
    "segments": "select * from scoring.customer_segments where cutoff_date = ?",
    "features": "select * from marts.customer_features where cutoff_date = ?",
    "int_cutoffs": "select * from intermediate.int_cutoffs where cutoff_date = ?",
    "int_order_value_caps": "select * from intermediate.int_order_value_caps where cutoff_date = ?",
}


@dg.asset(
    key=["serving", "online_features"],
    deps=[
        dg.AssetKey(["scoring", "clv_scores"]),
        dg.AssetKey(["scoring", "value_tiers"]),
        dg.AssetKey(["scoring", "clv_explanations"]),
        dg.AssetKey(["scoring", "customer_segments"]),
        dg.AssetKey(["marts", "customer_features"]),
    ],
    group_name="serving",
    kinds={"parquet", "duckdb"},
    description=(
        "The latest cutoff's scores, probability alive, value tier, segment, top drivers, model version and rung, and "
        "the features of every scored customer, with the batch's population quantities and the dbt models' compiled SQL: "
        "written aside and renamed into <state>/online/, its manifest written last. What the scoring API serves."
    ),
)
def online_features(context: dg.AssetExecutionContext, warehouse: DuckDBResource, mlflow: MlflowResource):
    import duckdb
    import pandas as pd

    from clv_platform.defs.scoring.assets import last_batch
    from clv_platform.lib.dbt_compile import compile_models
    from clv_platform.ml import online, registry

    with warehouse.get_connection() as con:
        try:
            (cutoff,) = con.execute("select max(cutoff_date) from scoring.clv_scores").fetchone()
        except duckdb.CatalogException:
            raise dg.Failure("Table scoring.clv_scores does not exist: materialize scoring/clv_scores first.") from None
        if cutoff is None:
            raise dg.Failure("Table scoring.clv_scores has no rows: materialize scoring/clv_scores first.")
        try:
            frames = {name: con.execute(sql, [cutoff]).df() for name, sql in _SNAPSHOT_QUERIES.items()}
        except duckdb.CatalogException as error:
            raise dg.Failure(f"The snapshot's inputs are not all built: {error}") from None
        frames["raw_customers"] = con.execute(
            "select c.* from raw.customers c join scoring.clv_scores s on s.customer_id = c.customer_id "
            "where s.cutoff_date = ? order by c.customer_id",
            [cutoff],
        ).df()
    scores = frames["scores"]
    names = scores["model_name"].astype(str).unique()
    if len(names) != 1:
        raise dg.Failure(f"scoring.clv_scores at {cutoff} holds {len(names)} registered models; one cutoff is scored by one.")
    model_name = str(names[0])
    with warehouse.get_connection() as con:
        batch = last_batch(con)
    if str(pd.Timestamp(batch.cutoff_date).date()) != str(pd.Timestamp(cutoff).date()):
        raise dg.Failure(f"The latest scoring recorded is of {batch.cutoff_date}, not {cutoff}: materialize scoring/clv_scores.")
    if "arm" not in scores or scores["arm"].isna().any():
        scores = scores.assign(arm="champion")  # scored before rollouts: every row the champion's

    # probability_alive is not stored with the scores: the version that made each row computes it.
    mlflow.activate()
    parts, rungs = [], {}
    for model_version in scores["model_version"].astype(str).unique():
        model = registry.load_model_version(model_name, model_version)
        rungs[model_version] = registry.estimator_of(model).name
        mine = scores.loc[scores["model_version"].astype(str) == model_version, ["customer_id"]]
        scored = frames["features"].merge(mine, on="customer_id")
        parts.append(registry.predict(model, scored).assign(customer_id=scored["customer_id"].to_numpy()))
    predictions = pd.concat(parts, ignore_index=True)
    champion_version = batch.model_version
    challenger_version = batch.challenger_version or None
    model_version, rung = champion_version, rungs.get(champion_version) or batch.model_rung
    try:
        tables = online.snapshot_tables(
            scores,
            predictions,
            frames["tiers"],
            frames["explanations"],
            frames["segments"],
            frames["features"],
            frames["raw_customers"],
            {name: frames[name] for name in online.POPULATION_MODELS},
        )
    except ValueError as error:
        raise dg.Failure(f"Cannot snapshot the scores of {cutoff}: {error}") from None

    cutoff_text = str(cutoff)[:10]
    manifest = compile_models(f"+{online.FEATURE_MODEL},resource_type:model", {"cutoff_date": cutoff_text, "training_cutoffs": 0})
    sql = online.FeatureSql.from_manifest(manifest)
    written = online.write_snapshot(
        settings.state_dir(),
        tables,
        sql,
        {
            "cutoff_date": cutoff_text,
            "model_name": model_name,
            "model_version": model_version,
            "model_rung": rung,
            # Under a canary or A/B rollout the challenger arm's rows are the challenger's; every row names its version.
            "rollout": {"mode": batch.rollout_mode, "share": batch.rollout_share, "salt": batch.rollout_salt},
            "champion_version": champion_version,
            "challenger_version": challenger_version,
            "model_rungs": rungs,
        },
    )
    path = online.online_dir(settings.state_dir()) / written["path"]
    context.log.info(f"Online snapshot {written['snapshot_id']}: {written['rows']} customers of cutoff {cutoff_text} at {path}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": written["rows"],
            "path": dg.MetadataValue.path(str(path)),
            "snapshot_id": written["snapshot_id"],
            "cutoff_date": cutoff_text,
            "model_name": model_name,
            "model_version": model_version,
            "model_rung": rung,
            "rollout": f"{batch.rollout_mode} (share {batch.rollout_share:g})",
            "challenger_version": challenger_version or "",
            "sha256": written["sha256"],
            "feature_models": dg.MetadataValue.json([m.name for m in sql.models]),
        },
        data_version=dg.DataVersion(written["sha256"]),
    )
