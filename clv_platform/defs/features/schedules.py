"""Daily: load yesterday's partition of raw data and rebuild the features on it."""

from datetime import datetime, timedelta

import dagster as dg

from clv_platform.lib.ingestion import DAILY_PARTITIONS

ingest_and_features_job = dg.define_asset_job(
    name="ingest_and_features",
    selection=dg.AssetSelection.groups("ingestion", "features") | dg.AssetSelection.assets(["monitoring", "data_profile"]),
    partitions_def=DAILY_PARTITIONS,
    description="Load a range of days of raw data, profile it and rebuild the dbt feature tables, tests included.",
)


@dg.schedule(
    name="daily_ingest_and_features",
    job=ingest_and_features_job,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every day at 02:00 UTC, for the day that has just ended.",
)
def daily_ingest_and_features(context: dg.ScheduleEvaluationContext):
    scheduled = context.scheduled_execution_time or datetime.now()
    day = (scheduled - timedelta(days=1)).strftime("%Y-%m-%d")
    return dg.RunRequest(run_key=day, partition_key=day)
