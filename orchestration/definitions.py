"""The one Dagster code location: `dagster dev -m orchestration.definitions` (see `make ui`)."""

from __future__ import annotations

import dagster as dg
from dagster_dbt import DbtCliResource

from orchestration.checks import orders_present, rejects_reported
from orchestration.dbt import dbt_project, tideline_dbt_assets
from orchestration.landing.assets import landing_zone
from orchestration.manifest import dbt_executable
from orchestration.resources import PipelineSettings, WarehouseResource
from orchestration.schedules import daily_refresh, pipeline_job
from orchestration.settings import Settings


def build_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=[landing_zone, tideline_dbt_assets],
        asset_checks=[rejects_reported, orders_present],
        jobs=[pipeline_job],
        schedules=[daily_refresh],
        resources={
            "dbt": DbtCliResource(
                project_dir=dbt_project,
                profiles_dir=str(dbt_project.profiles_dir),
                dbt_executable=dbt_executable(),
            ),
            "warehouse": WarehouseResource(path=str(settings.warehouse)),
            "pipeline": PipelineSettings(raw_dir=str(settings.raw_dir), as_of=settings.as_of),
        },
    )


defs = build_definitions(Settings.from_env())
