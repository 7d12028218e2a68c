"""Jobs and schedules."""

from __future__ import annotations

import dagster as dg

pipeline_job = dg.define_asset_job(
    "tideline_pipeline",
    selection=dg.AssetSelection.all(),
    description="Load the landing zone, build every dbt model and run every check.",
)

daily_refresh = dg.ScheduleDefinition(
    name="daily_refresh",
    job=pipeline_job,
    cron_schedule="0 6 * * *",
    execution_timezone="UTC",
    description="Every day at 06:00 UTC: reload the landing zone and rebuild the marts as of today.",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
