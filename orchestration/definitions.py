"""The one Dagster code location: `dagster dev -m orchestration.definitions` (see `tideline ui`, `make ui`).

`build_definitions` turns Settings (and the activation values a caller gives as data) into the
assets, checks, jobs, schedules, sensors and typed resources. This module is the code location's
entry point, so, like the CLI, it reads its environment once: `Settings.from_env(os.environ)`,
and the environment variables the activation config names become dg.EnvVar resources. The CLI's
own runs replace `defs` with the definitions of their settings (orchestration/runner.py).

Everything a run generates goes to the warehouse's state folder (Settings.state_dir: models,
reports, outbox, run logs, the BI copy), and every run of every job (CLI, UI, schedule, sensor)
carries the run tags tideline/raw_dir, tideline/warehouse and tideline/as_of.

On the postgres target (Settings.target) the code location holds what runs on PostgreSQL: the
landing zone, both dbt steps and the landing and rejects checks, in the job tideline_pipeline. The
steps that are still DuckDB-only Python (ML, attribution, activation, journeys, staff, report, BI
copy) are left out, so no run can point them at a DuckDB file that is not the warehouse; their
names are in the Definitions' metadata (DUCKDB_ONLY_STEPS), which `tideline run` prints with the
reason, and in the job's description.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence

import dagster as dg
from dagster_dbt import DbtCliResource
from dagster_shared.record import replace

from activation.journeys.files import journeys_dir
from orchestration.activation import build_activation
from orchestration.alerts import campaign_performance_alerts
from orchestration.attribution import channel_removal_effects
from orchestration.checks import orders_present, rejects_reported
from orchestration.console import CONSOLE_LOGGER, tideline_console
from orchestration.dbt import dbt_project, tideline_dbt_assets, tideline_dbt_scored_assets
from orchestration.journeys import build_journeys
from orchestration.landing import landing_zone
from orchestration.ml import ml_assets
from orchestration.report import ReportSettings, campaign_report
from orchestration.resources import (
    MLSettings,
    PipelineSettings,
    RunLog,
    activation_config_resource,
    warehouse_resource,
)
from orchestration.schedules import (
    daily_refresh,
    daily_scoring_job,
    pipeline_job,
    retrain_job,
    weekly_retrain,
)
from orchestration.serving import bi_warehouse_asset
from orchestration.staff import staff_notifications
from tideline.dbt_manifest import dbt_executable
from tideline.reporting.console import step_label
from tideline.settings import DUCKDB_ONLY_REASON, Settings

# Definitions metadata on the postgres target: the steps left out (for DUCKDB_ONLY_REASON)
DUCKDB_ONLY_STEPS = "tideline/duckdb_only_steps"


def build_definitions(
    settings: Settings,
    environ: Mapping[str, str] | None = None,
    activation_values: Mapping[str, str] | None = None,
) -> dg.Definitions:
    """The code location for `settings`. `environ`: the entry point's environment (which variables the
    activation config names are set); `activation_values`: values for the config's `${VAR}`s given
    as data (the local destinations' addresses, the demo's quiet hours)."""
    sync_assets, sync_jobs, sync_schedules, sync_sensors = build_activation(dbt_project.manifest_path)
    journey_assets, journey_jobs, journey_schedules = build_journeys(journeys_dir(settings.journeys_dir))
    assets = [
        landing_zone,
        tideline_dbt_assets,
        *ml_assets,
        channel_removal_effects,
        tideline_dbt_scored_assets,
        *sync_assets,
        *journey_assets,
        staff_notifications,
        campaign_report,
    ]
    assets.append(bi_warehouse_asset(_leaves(assets)))
    checks = [rejects_reported, orders_present, campaign_performance_alerts]
    jobs = [pipeline_job, daily_scoring_job, retrain_job, *sync_jobs, *journey_jobs]
    schedule_defs = [daily_refresh, weekly_retrain, *sync_schedules, *journey_schedules]
    metadata = {}
    if settings.on_postgres:
        left_out = [a for a in assets if a not in POSTGRES_ASSETS]
        steps = sorted({step_label(a.node_def.name) for a in left_out})
        assets, checks, schedule_defs, sync_sensors = (
            list(POSTGRES_ASSETS),
            [rejects_reported, orders_present],
            [],
            [],
        )
        jobs = [postgres_pipeline_job(steps)]
        metadata = {DUCKDB_ONLY_STEPS: dg.MetadataValue.json(steps)}
    jobs, schedules, sensors = with_run_tags(jobs, schedule_defs, sync_sensors, settings.run_tags())
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        # `console` is Dagster's default (the UI's runs); `tideline run` configures its own
        loggers={"console": dg.colored_console_logger, CONSOLE_LOGGER: tideline_console},
        resources={
            "dbt": DbtCliResource(
                project_dir=dbt_project,
                profiles_dir=str(dbt_project.profiles_dir),
                dbt_executable=dbt_executable(),
                global_config_flags=["--no-use-colors"],  # dbt's detail goes to a log file
                target=settings.target,  # a dbt_project/profiles.yml output: duckdb or postgres
            ),
            "warehouse": warehouse_resource(settings, environ or {}),
            "pipeline": PipelineSettings(raw_dir=str(settings.raw_dir), as_of=settings.as_of),
            "ml": MLSettings(models_dir=str(settings.models_dir)),
            "activation": activation_config_resource(settings, environ or {}, activation_values),
            "reports": ReportSettings(reports_dir=str(settings.reports_dir)),
            "run_log": RunLog(logs_dir=str(settings.logs_dir)),
        },
        metadata=metadata,
    )


# what runs on the postgres target (the rest is DuckDB-only Python so far)
POSTGRES_ASSETS = (landing_zone, tideline_dbt_assets, tideline_dbt_scored_assets)


def postgres_pipeline_job(left_out: Sequence[str]) -> dg.UnresolvedAssetJobDefinition:
    """tideline_pipeline on the postgres target: every asset there, saying what it leaves out."""
    return dg.define_asset_job(
        pipeline_job.name,
        selection=dg.AssetSelection.all(),
        description="Load the landing zone into PostgreSQL and build every dbt model there. Left out "
        f"({DUCKDB_ONLY_REASON}): {', '.join(left_out)}.",
    )


def duckdb_only_steps(defs: dg.Definitions) -> list[str]:
    """The steps the postgres target's definitions leave out ([] on DuckDB)."""
    value = (defs.metadata or {}).get(DUCKDB_ONLY_STEPS)
    return list(getattr(value, "value", value) or [])


def _leaves(assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetKey]:
    """The asset keys nothing else depends on: once they are done, the run is."""
    keys = {key for a in assets for key in a.keys}
    parents = {dep.asset_key for a in assets for spec in a.specs for dep in spec.deps}
    return sorted(keys - parents, key=lambda k: k.to_user_string())


def with_run_tags(
    jobs: Sequence[dg.UnresolvedAssetJobDefinition],
    schedules: Sequence[dg.ScheduleDefinition],
    sensors: Sequence[dg.SensorDefinition],
    tags: Mapping[str, str],
) -> tuple[list, list, list]:
    """The jobs with `tags` added to their run tags (every run of them carries those tags, whoever
    launches it), and the schedules and sensors pointed at the tagged jobs."""
    tagged = {job.name: replace(job, run_tags={**(job.run_tags or {}), **tags}) for job in jobs}

    def retarget_schedule(schedule: dg.ScheduleDefinition) -> dg.ScheduleDefinition:
        job = tagged.get(schedule.job_name)
        return schedule.with_updated_job(job) if job is not None else schedule

    def retarget_sensor(sensor: dg.SensorDefinition) -> dg.SensorDefinition:
        if not sensor.has_jobs:
            return sensor
        with warnings.catch_warnings():  # copying a sensor passes its (beta) `owners` on
            warnings.simplefilter("ignore", dg.BetaWarning)
            return sensor.with_updated_jobs([tagged.get(job.name, job) for job in sensor.jobs])

    return (
        list(tagged.values()),
        [retarget_schedule(s) for s in schedules],
        [retarget_sensor(s) for s in sensors],
    )


settings = Settings.from_env(os.environ)
defs = build_definitions(settings, os.environ)
