import dagster as dg

weekly_scoring_job = dg.define_asset_job(
    name="weekly_scoring",
    selection=dg.AssetSelection.groups("scoring", "serving", "monitoring"),
    description=(
        "Score every active customer with the champion and shadow-score them with the challenger, snapshot the scores "
        "for the API, then report drift."
    ),
)

weekly_scoring = dg.ScheduleDefinition(
    name="weekly_scoring",
    job=weekly_scoring_job,
    cron_schedule="0 4 * * 1",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Mondays at 04:00 UTC, after the daily feature build.",
)
