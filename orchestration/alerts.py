"""Campaign-performance alerts as Dagster asset checks on marts/campaign_alert_rates.

A thin wrapper: one multi-check runs the checks table of activation/alerts.py (each check one
rate column of the mart, computed by dbt, against a threshold of the `alerts:` section of the
activation config) and reports one check per row, severity WARN: delivery_failure_rate_alert,
open_rate_alert, unsubscribe_spike_alert, complaint_rate_alert. A failing check sends its new
alerts to the staff webhook (once per check, campaign, channel, variant and day); its metadata
holds the offending rows and whether an alert went out. The checks run whenever a job
materialises the mart (the pipeline and daily jobs) and pass with a 'no data' description while
the mart does not exist yet. They write tideline_sync.alerts_sent, so they are in the
`warehouse` pool like every other writer.
"""

from collections.abc import Iterator, Sequence
from pathlib import Path

import dagster as dg
import pandas as pd

from activation.alerts import (
    MART,
    RULES,
    Alert,
    SendReport,
    alert_checks,
    evaluate,
    notify,
    read_rates,
)
from orchestration.dbt import model_key
from orchestration.resources import ActivationConfigResource, WarehouseResource

RATES_KEY = model_key("campaign_alert_rates")
CHECK_NAMES = {rule.check: f"{rule.check}_alert" for rule in RULES}


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
    for check in CHECK_NAMES.values():
        yield dg.AssetCheckResult(
            asset_key=RATES_KEY,
            check_name=check,
            passed=passed,
            severity=dg.AssetCheckSeverity.WARN,
            description=description,
        )


@dg.multi_asset_check(
    name="campaign_performance_alerts",
    specs=[
        dg.AssetCheckSpec(CHECK_NAMES[rule.check], asset=RATES_KEY, description=rule.summary)
        for rule in RULES
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
    checks = alert_checks(config.alerts)
    with warehouse.connect() as con:
        rows = read_rates(con)
        if not rows:
            what = "does not exist yet" if rows is None else "has no rows"
            yield from _results(f"no data: {MART} {what}")
            return
        alerts = evaluate(rows, checks)
        report = notify(con, alerts, config) if alerts else SendReport()
    for alert, error in report.failed:
        context.log.warning("alert %s for campaign %s not sent: %s", alert.check, alert.campaign, error)
    latest = str(rows[0]["window_end"])[:10]
    enabled = {c.rule.check for c in checks}
    for check in CHECK_NAMES:
        found = [a for a in alerts if a.check == check]
        sent = [a for a in report.sent if a.check == check]
        metadata: dict = {
            "latest_send_day": latest,
            "window_days": int(rows[0]["window_days"]),
            "offenders": dg.MetadataValue.int(len(found)),
            "alert_sent": dg.MetadataValue.bool(bool(sent)),
            "alerts_sent_now": dg.MetadataValue.int(len(sent)),
            "alerts_sent_before": dg.MetadataValue.int(sum(a.check == check for a in report.already_sent)),
            "alerts_failed": dg.MetadataValue.int(sum(a.check == check for a, _ in report.failed)),
        }
        if found:
            metadata["offending_rows"] = dg.MetadataValue.md(_offenders(found, report))
        if check not in enabled:
            description = "disabled in the alerts config"
        elif found:
            description = f"{len(found)} offender(s): " + "; ".join(a.message for a in found[:3])
            errors = sorted({error for a, error in report.failed if a.check == check})
            if errors:
                description += f" (alert not sent, tried again next time: {'; '.join(errors)})"
        else:
            description = f"every campaign × channel × variant within the limits (latest send day {latest})"
        yield dg.AssetCheckResult(
            asset_key=RATES_KEY,
            check_name=CHECK_NAMES[check],
            passed=not found,
            severity=dg.AssetCheckSeverity.WARN,
            description=description,
            metadata=metadata,
        )
