"""scoring/clv_scores_export: the latest cutoff's scores as one Parquet file for marketing analysts.

Where it goes is ``CLV_EXPORT_URI``: a folder (default ``exports/`` in the state directory) or
``s3://bucket/prefix`` through the ``s3`` resource. Layout and write order: ``clv_platform/export.py``.
"""

from datetime import datetime, timezone

import dagster as dg
from dagster_aws.s3 import S3Resource
from dagster_duckdb import DuckDBResource

from clv_platform import settings

LATEST_SCORES_SQL = """
select * from scoring.clv_scores
where cutoff_date = (select max(cutoff_date) from scoring.clv_scores)
order by customer_id
"""


@dg.asset(
    key=["scoring", "clv_scores_export"],
    deps=[dg.AssetKey(["scoring", "clv_scores"])],
    group_name="scoring",
    kinds={"parquet", "s3"},
    description=(
        "The latest cutoff's scores as one Parquet file, Hive-partitioned by cutoff_date, with a manifest "
        "(rows, model version, sha256), in the folder or s3://bucket/prefix that CLV_EXPORT_URI names."
    ),
)
def clv_scores_export(context: dg.AssetExecutionContext, warehouse: DuckDBResource, s3: S3Resource):
    import duckdb

    from clv_platform import export

    uri = settings.export_uri()
    try:
        location = export.parse_export_uri(uri)
    except ValueError as error:
        raise dg.Failure(f"{settings.EXPORT_URI_ENV}: {error}") from None

    with warehouse.get_connection() as con:
        try:
            scores = con.execute(LATEST_SCORES_SQL).df()
        except duckdb.CatalogException:
            raise dg.Failure("Table scoring.clv_scores does not exist: materialize scoring/clv_scores first.") from None
    if scores.empty:
        raise dg.Failure("Table scoring.clv_scores has no rows: materialize scoring/clv_scores first.")
    try:
        files = export.build_export(scores, exported_at=datetime.now(timezone.utc))
    except ValueError as error:
        raise dg.Failure(f"The latest cutoff in scoring.clv_scores cannot be exported: {error}") from None

    try:
        if location.scheme == "s3":
            export.write_to_s3(s3.get_client(), location, files)
        else:
            export.write_to_folder(location, files)
    except Exception as error:
        message = export.describe_write_error(error, location)
        if message is None:
            raise
        raise dg.Failure(message) from None

    manifest = files.manifest
    parquet_uri = location.join(files.parquet_key)
    context.log.info(f"Exported {manifest['row_count']} scores of cutoff {manifest['cutoff_date']} to {parquet_uri}")
    return dg.MaterializeResult(
        metadata={
            "uri": dg.MetadataValue.path(parquet_uri),
            "manifest_uri": dg.MetadataValue.path(location.join(files.manifest_key)),
            "dataset_uri": dg.MetadataValue.path(location.join(export.DATASET)),
            "dagster/row_count": manifest["row_count"],
            "cutoff_date": manifest["cutoff_date"],
            "model_name": manifest["model_name"],
            "model_version": manifest["model_version"],
            "bytes": manifest["bytes"],
            "sha256": manifest["sha256"],
            "exported_at": manifest["exported_at"],
        },
        data_version=dg.DataVersion(manifest["sha256"]),
    )
