"""Staff alerts when a pilot's gate fails: through the alerts destination (the signed webhook of
activation.alerts), with the failing rules and their numbers, and what a person can do about it.

One alert per launch (activation and content version): its key is recorded in
tideline_sync.alerts_sent once the destination accepted it, so the runs that keep holding the rest
afterwards do not repeat it, and one that could not be sent is tried again by the next run.
Aggregates only: campaign, activation, rates and thresholds, never a customer.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

import duckdb

from activation.alerts import Alert, already_sent, record_sent
from activation.config import ActivationConfig, SyncBinding
from activation.destinations import create
from activation.destinations.base import ConfigError, OutboundRecord, SyncContext
from activation.launches.gate import GateFailed

log = logging.getLogger(__name__)

CHECK = "pilot_gate"


def gate_failure_alert(binding: SyncBinding, failing: list[str], day: dt.date) -> Alert:
    """The alert of a failed gate (its key: check, campaign, channel, the activation and content
    version in place of the variant, and the day the alert is first raised)."""
    message = (
        f"pilot gate failed for {binding.sync_key} (campaign {binding.campaign}, content "
        f"{binding.content_version}): {'; '.join(failing) or 'see tideline_sync.launch_decisions'}. "
        f"The rest of the audience is held: `tideline pilot release {binding.sync_key} --by NAME` "
        f"sends it, `tideline pilot cancel {binding.sync_key} --by NAME` drops it."
    )
    launch = f"{binding.sync_key}:{binding.content_version}"
    return Alert(CHECK, binding.campaign, binding.channel or "none", launch, day, 0.0, 0.0, message)


def gate_failed_notifier(
    con: duckdb.DuckDBPyConnection, config: ActivationConfig, now: dt.datetime | None = None
) -> GateFailed:
    """The engine's `on_gate_failed`: the alert through config.alerts.destination, once."""

    def notify(binding: SyncBinding, failing: list[str]) -> None:
        day = dt.date(2000, 1, 1)  # one alert per launch, whatever day the gate failed on
        alert = gate_failure_alert(binding, failing, day)
        if already_sent(con, [alert.idempotency_key]):
            return
        name = config.alerts.destination
        try:
            if name not in config.destinations:
                raise ConfigError(f"alerts: destination {name!r} is not declared under destinations:")
            destination = create(name, config.destinations[name], config.env)
        except ConfigError as exc:
            log.warning(
                "%s: the failed gate's alert cannot be sent (%s); next run tries again", binding.sync_key, exc
            )
            return
        try:
            fields = {
                "check": CHECK,
                "campaign": binding.campaign,
                "channel": binding.channel or "",
                "activation": binding.sync_key,
                "content_version": binding.content_version,
                "failing": failing,
                "message": alert.message,
                "source": "tideline_sync.launch_decisions",
            }
            record = OutboundRecord("", alert.idempotency_key, "send", fields)
            context = SyncContext(
                sync_id=str(uuid.uuid4()),
                segment="alerts",
                destination=destination.name,
                mode="alert",
                content={"type": "launch_gate_failed"},
            )
            results = destination.send_batch([record], context)
        finally:
            destination.close()
        if results and results[0].status == "sent":
            record_sent(con, [alert], destination.name, now)
        else:
            error = results[0].error if results else "no result"
            log.warning(
                "%s: the failed gate's alert was not accepted (%s); next run tries again",
                binding.sync_key,
                error,
            )

    return notify
