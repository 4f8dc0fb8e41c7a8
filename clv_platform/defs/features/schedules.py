import dagster as dg

ingest_and_features_job = dg.define_asset_job(
    name="ingest_and_features",
    selection=dg.AssetSelection.groups("ingestion", "features"),
    description="Reload raw data and rebuild the dbt feature tables, tests included.",
)

daily_ingest_and_features = dg.ScheduleDefinition(
    name="daily_ingest_and_features",
    job=ingest_and_features_job,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every day at 02:00 UTC.",
)
