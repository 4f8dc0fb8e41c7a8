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
    versions = scores[["model_name", "model_version"]].drop_duplicates()
    if len(versions) != 1:
        raise dg.Failure(f"scoring.clv_scores at {cutoff} holds {len(versions)} model versions; one cutoff is scored by one.")
    model_name, model_version = (str(v) for v in versions.iloc[0])

    # probability_alive is not stored with the scores: the version that made them computes it.
    mlflow.activate()
    model = registry.load_model_version(model_name, model_version)
    rung = registry.estimator_of(model).name
    scored = frames["features"].merge(scores[["customer_id"]], on="customer_id")
    predictions = registry.predict(model, scored).assign(customer_id=scored["customer_id"].to_numpy())
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
        {"cutoff_date": cutoff_text, "model_name": model_name, "model_version": model_version, "model_rung": rung},
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
            "sha256": written["sha256"],
            "feature_models": dg.MetadataValue.json([m.name for m in sql.models]),
        },
        data_version=dg.DataVersion(written["sha256"]),
    )
