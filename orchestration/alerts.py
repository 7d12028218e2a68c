"""Campaign-performance alerts as Dagster asset checks on marts/fct_campaign_performance.

One multi-check evaluates the thresholds of the `alerts:` section of the activation config
(activation/alerts.py does the work) and reports one check per kind, severity WARN:
delivery_failure_rate_alert, open_rate_alert, unsubscribe_spike_alert, complaint_rate_alert.
A failing check sends its new alerts to the staff webhook (once per check, campaign, channel,
variant and day); its metadata holds the offending rows and whether an alert went out. The
checks run whenever a job materialises the mart (the pipeline job) and pass with a 'no data'
description while the mart does not exist yet. They write tideline_sync.alerts_sent, so they
are in the `warehouse` pool like every other writer.
"""

from collections.abc import Iterator, Sequence
from pathlib import Path

import dagster as dg
import pandas as pd

from activation.alerts import CHECKS, MART, Alert, SendReport, evaluate, notify, read_performance
from orchestration.dbt import model_key
from orchestration.resources import ActivationConfigResource, WarehouseResource

PERFORMANCE_KEY = model_key("fct_campaign_performance")
CHECK_NAMES = {check: f"{check}_alert" for check in CHECKS}
DESCRIPTIONS = {
    "delivery_failure_rate": "Delivery failure rate ((failed + bounced) / (sent + failed)) above the limit.",
    "open_rate": "Open rate (human unique opens / delivered) below the limit, given enough delivered.",
    "unsubscribe_spike": "Unsubscribe rate on the latest send day above max(floor, factor × trailing rate).",
    "complaint_rate": "Complaint rate (spam complaints / delivered) above the limit.",
}


def _offenders(alerts: Sequence[Alert], report: SendReport) -> str:
    sent = {a.idempotency_key for a in report.sent}
    before = {a.idempotency_key for a in report.already_sent}
    frame = pd.DataFrame(
        [
            {
                "campaign": a.campaign,
                "channel": a.channel,
                "variant": a.variant,
                "day": a.day.isoformat(),
                "value": round(a.value, 4),
                "threshold": round(a.threshold, 4),
                "alert": "sent now"
                if a.idempotency_key in sent
                else "sent before"
                if a.idempotency_key in before
                else "not sent",
            }
            for a in alerts
        ]
    )
    return frame.to_markdown(index=False)


def _results(description: str, passed: bool = True) -> Iterator[dg.AssetCheckResult]:
    for check in CHECKS:
        yield dg.AssetCheckResult(
            asset_key=PERFORMANCE_KEY,
            check_name=CHECK_NAMES[check],
            passed=passed,
            severity=dg.AssetCheckSeverity.WARN,
            description=description,
        )


@dg.multi_asset_check(
    name="campaign_performance_alerts",
    specs=[
        dg.AssetCheckSpec(CHECK_NAMES[c], asset=PERFORMANCE_KEY, description=DESCRIPTIONS[c]) for c in CHECKS
    ],
    description="Marketers' thresholds on campaign performance; a failing check alerts the staff webhook.",
    pool="warehouse",
)
def campaign_performance_alerts(
    context: dg.AssetCheckExecutionContext,
    warehouse: WarehouseResource,
    activation: ActivationConfigResource,
) -> Iterator[dg.AssetCheckResult]:
    config = activation.config()
    if not Path(warehouse.path).exists():
        yield from _results(f"no data: the warehouse {warehouse.path} does not exist yet")
        return
    with warehouse.connect() as con:
        rows = read_performance(con, config.alerts)
        if not rows:
            what = "does not exist yet" if rows is None else "has no rows"
            yield from _results(f"no data: {MART} {what}")
            return
        alerts = evaluate(rows, config.alerts)
        report = notify(con, alerts, config) if alerts else SendReport()
    for alert, error in report.failed:
        context.log.warning("alert %s for campaign %s not sent: %s", alert.check, alert.campaign, error)
    latest = max(str(r["send_date"])[:10] for r in rows)
    for check in CHECKS:
        threshold = getattr(config.alerts, check)
        found = [a for a in alerts if a.check == check]
        sent = [a for a in report.sent if a.check == check]
        metadata: dict = {
            "latest_send_day": latest,
            "window_days": config.alerts.window_days,
            "offenders": dg.MetadataValue.int(len(found)),
            "alert_sent": dg.MetadataValue.bool(bool(sent)),
            "alerts_sent_now": dg.MetadataValue.int(len(sent)),
            "alerts_sent_before": dg.MetadataValue.int(sum(a.check == check for a in report.already_sent)),
            "alerts_failed": dg.MetadataValue.int(sum(a.check == check for a, _ in report.failed)),
        }
        if found:
            metadata["offending_rows"] = dg.MetadataValue.md(_offenders(found, report))
        if not threshold.enabled:
            description = "disabled in the alerts config"
        elif found:
            description = f"{len(found)} offender(s): " + "; ".join(a.message for a in found[:3])
            errors = sorted({error for a, error in report.failed if a.check == check})
            if errors:
                description += f" (alert not sent, tried again next time: {'; '.join(errors)})"
        else:
            description = f"every campaign × channel × variant within the limits (latest send day {latest})"
        yield dg.AssetCheckResult(
            asset_key=PERFORMANCE_KEY,
            check_name=CHECK_NAMES[check],
            passed=not found,
            severity=dg.AssetCheckSeverity.WARN,
            description=description,
            metadata=metadata,
        )
