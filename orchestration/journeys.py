"""Journey assets: one per journey file (journeys/<name>), each a tick of that journey.

They run in the pipeline job after the marts (so `make run` ticks every journey once) and on their
own in the `journey_ticks` job, which the `journey_ticks_every_minute` schedule launches (off by
default, like the other schedules: turn it on in the UI). Ticks share the `warehouse` pool with
every other step that writes the warehouse: DuckDB has one writer, so a tick waits for the step in
progress (at most the dbt build) rather than failing, and the pipeline's steps wait for a tick
(seconds). See docs/journeys.md, "How a tick runs".

Each asset is a thin wrapper over activation.journeys.run.run_ticks; its metadata is the tick's
counts, and the `no_stuck_entries` check warns when entries are overdue by more than an hour.
"""

# No `from __future__ import annotations` here: Dagster resolves the asset function's config
# annotation (JourneyTickConfig) at definition time and cannot read it as a string.
import datetime as dt
from pathlib import Path

import dagster as dg

from activation.journeys.clock import parse_clock
from activation.journeys.deliver import EngineDelivery
from activation.journeys.files import journey_names, journeys_dir, load_project_journeys, project_catalog
from activation.journeys.health import stuck_entries
from activation.journeys.run import run_ticks
from activation.staff.config import optional_staff_config
from orchestration.activation import launched_by
from orchestration.dbt import model_key
from orchestration.resources import ActivationConfigResource, PipelineSettings, WarehouseResource

GROUP = "journeys"
STUCK_AFTER = dt.timedelta(hours=1)


class JourneyTickConfig(dg.Config):
    dry_run: bool = False  # the policies decide, nothing is sent or recorded in the ledger
    clock: str = ""  # an ISO date-time to tick at ('' = the resource's clock, else the wall clock)


def journey_key(name: str) -> dg.AssetKey:
    return dg.AssetKey([GROUP, name])


def _journey_asset(name: str) -> dg.AssetsDefinition:
    key = journey_key(name)

    @dg.asset(
        key=key,
        deps=[model_key("dim_customers"), model_key("customer_tags")],
        group_name=GROUP,
        kinds={"python"},
        pool="warehouse",
        description=(
            f"A tick of journey {name} (config/journeys/{name}.yml): new entries, conversions, exits, "
            "and every due step, sends through the activation engine (consent, caps, quiet hours, ledger)."
        ),
        check_specs=[
            dg.AssetCheckSpec(
                "no_stuck_entries",
                asset=key,
                description=f"no entry in flight is overdue by more than {STUCK_AFTER}",
            )
        ],
    )
    def _tick(
        context: dg.AssetExecutionContext,
        config: JourneyTickConfig,
        warehouse: WarehouseResource,
        activation: ActivationConfigResource,
        pipeline: PipelineSettings,
    ):
        settings = activation.config()
        journeys = [
            j
            for j in load_project_journeys(journeys_dir(activation.journeys_dir), settings, project_catalog())
            if j.name == name
        ]
        clock = parse_clock(config.clock or activation.journey_clock)
        deliver = EngineDelivery(
            settings,
            Path(pipeline.raw_dir),
            activation.duckdb_limits(),
            workers=activation.workers,
            dry_run=config.dry_run,
            launched_by=launched_by(context.run.tags),
            staff=optional_staff_config(
                activation.config_path,
                destinations=settings.destinations,
                env=activation.resolved_environment(),
            ),
        )
        with warehouse.connect() as con:
            (result,) = run_ticks(
                con,
                journeys,
                clock,
                deliver=deliver,
                catalog=project_catalog(),
                raw_dir=Path(pipeline.raw_dir),
                default_timezone=settings.policies.default_timezone,
            )
            stuck = stuck_entries(con, name, clock - STUCK_AFTER)
        context.log.info("journey %s: %s", name, result.as_metadata())
        metadata = {k: v for k, v in result.as_metadata().items() if not isinstance(v, dict)}
        yield dg.MaterializeResult(
            asset_key=key,
            metadata={
                **metadata,
                "by_reason": dg.MetadataValue.json(dict(result.by_reason)),
                "reached": dg.MetadataValue.json(dict(result.reached)),
                "dry_run": result.dry_run,
                "seconds": round(result.duration_seconds, 2),
            },
        )
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name="no_stuck_entries",
            passed=stuck.count == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "overdue_entries": stuck.count,
                "oldest_due_at": str(stuck.oldest or ""),
                "by_step": dg.MetadataValue.json(stuck.by_step),
            },
        )

    return _tick


def build_journeys(directory: Path) -> tuple[list[dg.AssetsDefinition], list, list]:
    """(assets, jobs, schedules) for every journey file of `directory`."""
    names = journey_names(directory)
    if not names:
        return [], [], []
    assets = [_journey_asset(n) for n in names]
    job = dg.define_asset_job(
        "journey_ticks",
        selection=dg.AssetSelection.groups(GROUP),
        description="One tick of every journey: new entries, due steps, sends.",
    )
    schedule = dg.ScheduleDefinition(
        name="journey_ticks_every_minute",
        job=job,
        cron_schedule="* * * * *",
        execution_timezone="UTC",
        description="Every minute: a tick of every journey (event-to-send latency about a minute).",
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )
    return assets, [job], [schedule]
