"""scoring/clv_scores_export: the latest cutoff's scores, with their value tier, as one Parquet file for marketing analysts.

Where it goes is ``CLV_EXPORT_URI``: a folder (default ``exports/`` in the state directory) or
``s3://bucket/prefix`` through the ``s3`` resource. Layout and write order: ``clv_platform/export.py``.
"""

from datetime import UTC, datetime

import dagster as dg
from dagster_aws.s3 import S3Resource
from dagster_duckdb import DuckDBResource

from clv_platform import settings

# The tier must be of these very scores: same customer, cutoff, model version and predicted value.
LATEST_SCORES_SQL = """
select s.customer_id, s.cutoff_date, s.predicted_clv, t.value_tier, s.model_name, s.model_version
from scoring.clv_scores s
left join scoring.value_tiers t
  on t.customer_id = s.customer_id and t.cutoff_date = s.cutoff_date
  and t.model_version = s.model_version and t.predicted_clv = s.predicted_clv
where s.cutoff_date = (select max(cutoff_date) from scoring.clv_scores)
order by s.customer_id
"""


@dg.asset(
    key=["scoring", "clv_scores_export"],
    deps=[dg.AssetKey(["scoring", "clv_scores"]), dg.AssetKey(["scoring", "value_tiers"])],
    group_name="scoring",
    kinds={"parquet", "s3"},
    description=(
        "The latest cutoff's scores and value tiers as one Parquet file, Hive-partitioned by cutoff_date, with a manifest "
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
        except duckdb.CatalogException as error:
            table = "scoring.value_tiers" if "value_tiers" in str(error) else "scoring.clv_scores"
            raise dg.Failure(f"Table {table} does not exist: materialize scoring/{table.split('.')[1]} first.") from None
    if scores.empty:
        raise dg.Failure("Table scoring.clv_scores has no rows: materialize scoring/clv_scores first.")
    untiered = int(scores["value_tier"].isna().sum())
    if untiered:
        raise dg.Failure(
            f"{untiered} of {len(scores)} scores of the latest cutoff have no value tier of those scores in "
            "scoring.value_tiers: materialize scoring/value_tiers after scoring/clv_scores."
        )
    try:
        files = export.build_export(scores, exported_at=datetime.now(UTC))
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
    if manifest["neutralized_cells"]:
        context.log.warning(
            f"Text cells that a spreadsheet would run as formulas, prefixed with ': {manifest['neutralized_cells']}"
        )
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
            "neutralized_cells": dg.MetadataValue.json(manifest["neutralized_cells"]),
        },
        data_version=dg.DataVersion(manifest["sha256"]),
    )
