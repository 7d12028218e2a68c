"""Activation assets: one per segment × destination, built from the dbt manifest.

A segment model whose YAML declares `meta.activation` becomes assets keyed
activation/<segment>__<destination>, downstream of the segment model, so adding a
segment needs no Python. Run config `dry_run: true` plans and shows samples without
sending. A binding with a `schedule` (cron) also gets its own job and schedule;
the others run whenever the pipeline builds their segment.

Each asset is a thin wrapper over activation.activate.activate (revocations taken in, the
destination built from the run's validated activation config, the engine run under the DuckDB
limits of ActivationConfigResource); here it becomes metadata and checks. The run's launcher
(schedule, sensor, a person) goes into tideline_sync.sync_runs; a staged launch's stage, what it
holds back and why are in the metadata (activation.launches, docs/launches.md).
"""

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import dagster as dg
import duckdb

from activation.activate import activate
from activation.config import SyncBinding, bindings_from_manifest
from activation.engine import SyncResult
from activation.launches import gate
from activation.ledger import due_deferrals
from orchestration.dbt import model_key
from orchestration.resources import ActivationConfigResource, PipelineSettings, WarehouseResource

LAUNCHED_BY_TAG = "tideline/launched_by"
WAITING_HELP = {
    gate.AWAITING_GATE: "The pilot's gate is judged once its wait has passed and enough was delivered.",
    gate.GATE_FAILED: (
        "The pilot's gate failed (tideline_sync.launch_decisions): `tideline pilot release {key} --by NAME` "
        "sends the rest, `tideline pilot cancel {key} --by NAME` drops it."
    ),
    gate.CANCELLED: "The launch was cancelled after its pilot: nothing more is sent for this content version.",
    gate.AWAITING_DECISION: "The test share is out; the winner goes to the rest after decide_after.",
    gate.AWAITING_APPROVAL: (
        "The audience is above the approval limit: nothing beyond the pilot or test is sent until "
        "`tideline approve {key} --by NAME` approves this content version."
    ),
}


class SyncRunConfig(dg.Config):
    dry_run: bool = False


def _upstream(binding: SyncBinding) -> list[dg.AssetKey]:
    """The dbt models a sync reads, by the keys the manifest gives them: its segment and, for a
    channel's sends, the hard bounces and complaints the engagement marts found."""
    suppressions = [model_key("engagement_suppressions")] if binding.channel else []
    return [model_key(binding.segment), *suppressions, *_launch_upstream(binding)]


def _launch_upstream(binding: SyncBinding) -> list[dg.AssetKey]:
    """The marts a staged launch's decisions read (activation.launches.gate): a pilot's gate
    rates, a roll-out's experiment results; built before the sync, so a run judges fresh numbers."""
    launch = binding.launch
    if launch is None:
        return []
    pilot = [model_key("launch_gate_rates")] if launch.pilot else []
    rollout = [model_key("experiment_results")] if launch.rollout else []
    return [*pilot, *rollout]


def launched_by(tags: Mapping[str, str]) -> str:
    """Who or what launched a Dagster run, from its tags: a person through `tideline` (the tag
    tideline/launched_by: cli:<name>), a schedule, a sensor, a backfill, a user Dagster names
    (dagster/user), else someone in the Dagster UI or CLI whose name Dagster does not know."""
    if tags.get(LAUNCHED_BY_TAG):
        return tags[LAUNCHED_BY_TAG]
    for tag, kind in (
        ("dagster/schedule_name", "schedule"),
        ("dagster/sensor_name", "sensor"),
        ("dagster/backfill", "backfill"),
        ("dagster/user", "user"),
    ):
        if tags.get(tag):
            return f"{kind}:{tags[tag]}"
    return "dagster:manual"


def launch_metadata(binding: SyncBinding, result: SyncResult) -> dict[str, dg.MetadataValue]:
    """What a staged launch did in the run, for the asset's metadata: its stage, what it holds
    back and why (with what a person can do), the decisions it made. Empty without a launch."""
    if result.launch_stage is None:
        return {}
    metadata: dict[str, dg.MetadataValue] = {
        "launch_stage": dg.MetadataValue.text(result.launch_stage),
        "launch_waiting": dg.MetadataValue.json(result.launch_waiting),
    }
    if result.launch_decisions:
        metadata["launch_decisions"] = dg.MetadataValue.json(result.launch_decisions)
    todo = [WAITING_HELP[reason].format(key=binding.sync_key) for reason in result.launch_waiting]
    if todo:
        metadata["launch_what_to_do"] = dg.MetadataValue.text(" ".join(todo))
    return metadata


def _sync_asset(binding: SyncBinding, deps: Sequence[dg.AssetKey] = ()) -> dg.AssetsDefinition:
    """The sync asset of `binding`, downstream of `deps` (build_activation: `_upstream`)."""
    key = dg.AssetKey(["activation", binding.sync_key])

    @dg.asset(
        key=key,
        deps=list(deps),
        group_name="activation",
        kinds={"python"},
        owners=[f"team:{binding.owner}"] if binding.owner else None,
        pool="warehouse",
        description=(
            f"Syncs segment {binding.segment} to {binding.destination} ({binding.mode}"
            f"{', channel ' + binding.channel if binding.channel else ''}): plan against the last synced state, "
            f"apply consent, suppression, caps, quiet hours and holdout, then the launch's pilot, roll-out and "
            f"approval gates, send, record every record in the ledger."
        ),
        check_specs=[
            dg.AssetCheckSpec(
                "failure_share",
                asset=key,
                description="share of attempted records that failed stays under the limit",
            ),
            dg.AssetCheckSpec(UNKNOWN_DELIVERIES, asset=key, description=UNKNOWN_DELIVERIES_DESCRIPTION),
        ],
    )
    def _sync(
        context: dg.AssetExecutionContext,
        config: SyncRunConfig,
        warehouse: WarehouseResource,
        activation: ActivationConfigResource,
        pipeline: PipelineSettings,
    ):
        settings = activation.config()
        with warehouse.connect() as con:
            done = activate(
                con,
                binding,
                settings,
                pipeline.raw_dir,
                limits=activation.duckdb_limits(),
                workers=activation.workers,
                dry_run=config.dry_run,
                launched_by=launched_by(context.run.tags),
            )
        intake, result = done.intake, done.result
        context.log.info("%s: %s", binding.sync_key, json.dumps(result.as_dict()))
        metadata = {
            "sync_id": result.sync_id,
            "dry_run": result.dry_run,
            "revocations_taken_in": dg.MetadataValue.int(intake.revocations),
            **{k: dg.MetadataValue.int(int(v)) for k, v in result.counts.items()},
            "sent": dg.MetadataValue.int(result.sent),
            "skipped": dg.MetadataValue.int(result.skipped),
            "skipped_by_reason": dg.MetadataValue.json(result.skipped_by_reason),
            "failed": dg.MetadataValue.int(result.failed),
            "dead_letters": dg.MetadataValue.int(result.dead_letters),
            "unknown": dg.MetadataValue.int(result.unknown),
            "seconds": round(result.duration_seconds, 2),
            **launch_metadata(binding, result),
        }
        if result.samples:
            metadata["plan_sample"] = dg.MetadataValue.json(result.samples)
        if result.dry_run:  # how long the send would take (activation.engine.estimate)
            if result.estimated_send_seconds is not None:
                metadata["estimated_send_seconds"] = dg.MetadataValue.float(result.estimated_send_seconds)
            metadata["estimate_basis"] = result.estimate_basis or ""
        yield dg.MaterializeResult(asset_key=key, metadata=metadata)
        limit = settings.policies.failure_share_warn
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name="failure_share",
            passed=result.failure_share <= limit,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"failure_share": round(result.failure_share, 4), "limit": limit},
        )
        yield unknown_deliveries_check(key, result)

    return _sync


# --- records whose delivery is unknown (activation.reconcile) ---------------------------------------


UNKNOWN_DELIVERIES = "unknown_deliveries"
UNKNOWN_DELIVERIES_DESCRIPTION = (
    "no record of this sync is left `unknown` (sent, but no answer came back: it may or may not have "
    "arrived). Each run settles what the destination's delivery log or the provider's webhooks can "
    "answer; the rest waits for a person (activation.reconcile.settle)."
)


def unknown_deliveries_check(key: dg.AssetKey, result: SyncResult) -> dg.AssetCheckResult:
    """Warn while the sync has unknown records: how many, since when, what this run settled."""
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=UNKNOWN_DELIVERIES,
        passed=result.unknown_outstanding == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "unknown_outstanding": result.unknown_outstanding,
            "oldest_unknown": str(result.oldest_unknown or ""),
            "confirmed_this_run": result.confirmed,
            "released_this_run": result.released,
            "what_to_do": (
                "ask the provider whether these messages arrived, then record it with "
                "activation.reconcile.settle(con, sync_key, 'sent' or 'released')"
            ),
        },
    )


def deferred_messages_sensor(bindings: list[SyncBinding], job) -> dg.SensorDefinition:
    """Runs a message sync again once the quiet hours that deferred some of its messages are over
    (every deferral stores when quiet hours end for that customer), so a deferred message goes out
    in the morning even when the sync's own schedule always falls in someone's night."""
    keys = {b.sync_key: dg.AssetKey(["activation", b.sync_key]) for b in bindings}

    @dg.sensor(
        name="deferred_messages",
        job=job,
        minimum_interval_seconds=900,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Every 15 minutes: rerun message syncs whose quiet-hours deferrals are due.",
    )
    def _deferred(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
        if not Path(warehouse.path).exists():
            return dg.SkipReason("no warehouse yet")
        try:
            with warehouse.connect(read_only=True) as con:
                due = due_deferrals(con, dt.datetime.now(dt.UTC))
        except duckdb.IOException:  # a run holds the warehouse for writing: try again next tick
            return dg.SkipReason("the warehouse is being written to")
        requests = [
            dg.RunRequest(run_key=f"{sync_key}:{until:%Y-%m-%dT%H:%M}", asset_selection=[keys[sync_key]])
            for sync_key, until in sorted(due.items())
            if sync_key in keys
        ]
        return requests or dg.SkipReason("no deferred messages are due")

    return _deferred


def build_activation(manifest_path: Path) -> tuple[list[dg.AssetsDefinition], list, list, list]:
    """(assets, jobs, schedules, sensors) for every activation declared in the dbt project."""
    bindings = bindings_from_manifest(manifest_path) if Path(manifest_path).exists() else []
    assets = [_sync_asset(b, _upstream(b)) for b in bindings]
    jobs, schedules, sensors = [], [], []
    messages = [b for b in bindings if b.mode == "message" and b.channel]
    if messages:
        deferred_job = dg.define_asset_job(
            "activation_deferred",
            selection=dg.AssetSelection.assets(*(["activation", b.sync_key] for b in messages)),
            description="Message syncs rerun by the deferred_messages sensor when quiet hours end.",
        )
        jobs.append(deferred_job)
        sensors.append(deferred_messages_sensor(messages, deferred_job))
    for binding in bindings:
        if binding.schedule:
            job = dg.define_asset_job(
                f"sync__{binding.sync_key}",
                selection=dg.AssetSelection.assets(["activation", binding.sync_key]),
            )
            jobs.append(job)
            schedules.append(
                dg.ScheduleDefinition(job=job, cron_schedule=binding.schedule, execution_timezone="UTC")
            )
    return assets, jobs, schedules, sensors
