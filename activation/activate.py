"""One activation, start to end: what a sync asset runs (orchestration/activation.py wraps it).

`activate` takes in the consent revocations the engagement receiver wrote since the last sync
(activation.intake: an unsubscribe stops the very next send even when no dbt build ran in
between), builds the binding's destination from the validated activation config, runs the sync
engine under the DuckDB limits (activation.warehouse.limited) with the provider's webhooks as
evidence for unknown deliveries (activation.reconcile), and closes the destination whatever
happens. Plain data in, plain data out: no Dagster.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import duckdb

from activation.config import ActivationConfig, SyncBinding
from activation.engine import SyncEngine, SyncResult
from activation.intake import IntakeResult, take_in_revocations
from activation.launches.notify import gate_failed_notifier
from activation.reconcile import ProviderEvents
from activation.warehouse import DuckDBLimits, limited


@dataclass(frozen=True)
class Activation:
    intake: IntakeResult  # revocations taken in before planning
    result: SyncResult  # what the engine planned, sent, skipped and settled


def activate(
    con: duckdb.DuckDBPyConnection,
    binding: SyncBinding,
    config: ActivationConfig,
    raw_dir: Path | str,
    *,
    limits: DuckDBLimits,
    workers: int = 4,
    dry_run: bool = False,
    now: dt.datetime | None = None,
    keep_decisions: str | None = None,
    record_run: bool = True,
    customers: str = "marts.dim_customers",
    launched_by: str | None = None,
) -> Activation:
    """Sync `binding`'s segment to its destination (ConfigError naming the segment, destination
    and key when the binding or the destination's config cannot be used: nothing is sent then).
    `now`: the clock the policies and the ledger use (default the wall clock; a journey tick passes
    its own); `keep_decisions`, `record_run`, `customers` (whose consent and time zone the policies
    read), `launched_by` (who or what started it): see SyncEngine. A launch whose pilot gate fails
    alerts staff through the alerts destination (activation.launches.notify)."""
    binding.validate(config.destinations)
    destination = config.destination(binding.destination)
    rate = float(config.destinations[binding.destination].get("rate_limit_per_second", 0))
    try:
        with limited(con, limits, f"sync {binding.sync_key}"):
            intake = take_in_revocations(con, raw_dir)
            result = SyncEngine(
                con,
                destination,
                binding,
                config.policies,
                workers=workers,
                rate_per_second=rate,
                evidence=[ProviderEvents(raw_dir)],  # provider webhooks settle unknown sends
                now=now,
                keep_decisions=keep_decisions,
                record_run=record_run,
                customers=customers,
                launched_by=launched_by,
                on_gate_failed=gate_failed_notifier(con, config),
            ).run(dry_run=dry_run)
    finally:
        destination.close()
    return Activation(intake, result)
