"""The one Dagster code location: `dagster dev -m orchestration.definitions` (see `make ui`)."""

from __future__ import annotations

import dagster as dg
from dagster_dbt import DbtCliResource

from orchestration.activation import build_activation
from orchestration.alerts import campaign_performance_alerts
from orchestration.attribution import channel_removal_effects
from orchestration.checks import orders_present, rejects_reported
from orchestration.dbt import dbt_project, tideline_dbt_assets, tideline_dbt_scored_assets
from orchestration.landing.assets import landing_zone
from orchestration.manifest import dbt_executable
from orchestration.ml import ml_assets
from orchestration.report_assets import ReportSettings, campaign_report
from orchestration.resources import ActivationSettings, MLSettings, PipelineSettings, WarehouseResource
from orchestration.schedules import (
    daily_refresh,
    daily_scoring_job,
    pipeline_job,
    retrain_job,
    weekly_retrain,
)
from orchestration.settings import Settings


def build_definitions(settings: Settings) -> dg.Definitions:
    sync_assets, sync_jobs, sync_schedules, sync_sensors = build_activation(dbt_project.manifest_path)
    return dg.Definitions(
        assets=[
            landing_zone,
            tideline_dbt_assets,
            *ml_assets,
            channel_removal_effects,
            tideline_dbt_scored_assets,
            *sync_assets,
            campaign_report,
        ],
        asset_checks=[rejects_reported, orders_present, campaign_performance_alerts],
        jobs=[pipeline_job, daily_scoring_job, retrain_job, *sync_jobs],
        schedules=[daily_refresh, weekly_retrain, *sync_schedules],
        sensors=sync_sensors,
        resources={
            "dbt": DbtCliResource(
                project_dir=dbt_project,
                profiles_dir=str(dbt_project.profiles_dir),
                dbt_executable=dbt_executable(),
            ),
            "warehouse": WarehouseResource(path=str(settings.warehouse)),
            "pipeline": PipelineSettings(raw_dir=str(settings.raw_dir), as_of=settings.as_of),
            "ml": MLSettings(models_dir=str(settings.home / "models")),
            "activation": ActivationSettings(),
            "reports": ReportSettings(reports_dir=str(settings.home / "reports")),
        },
    )


defs = build_definitions(Settings.from_env())
