"""Staff alerts on campaign performance: thresholds over marts.fct_campaign_performance, sent once.

    rows = read_performance(con, config.alerts)          # None when the mart does not exist yet
    alerts = evaluate(rows, config.alerts)               # plain data in, list[Alert] out
    report = notify(con, alerts, config)                 # new alerts through the webhook, recorded

What is judged (thresholds in the `alerts:` section of config/activation.yml, docs/alerts.md):
the window is the last `window_days` send days of the mart, ending with its latest send day
(default 1: the latest send day only). Counts are summed per campaign × channel × variant over
the window and the rates recomputed from them, with the mart's denominators:

    delivery_failure_rate  (failed + bounced) / (sent + failed)   alert above `max`
    open_rate              unique_opens / delivered               alert below `min` (email only:
                                                                  the only channel with an open pixel)
    complaint_rate         complaints / delivered                 alert above `max`
    unsubscribe_spike      unsubscribes / delivered, per campaign × channel (variant 'all': every
                           variant together), alert above max(floor, factor × trailing rate), the
                           trailing rate being all unsubscribes / all delivered of the
                           `trailing_days` days before the window (0 without history)

A rate is judged only when its denominator is > 0 and >= `min_sample`; limits are strict (a
failure rate of exactly 5% does not alert at max 0.05). An alert's day is the window's last day.

Dedup: each alert has an idempotency key, a UUID from sha256(check|campaign|channel|variant|day).
Alerts the destination accepted are recorded in tideline_sync.alerts_sent and never sent again;
a failed send is not recorded, so the next evaluation tries again (the receiver may see the same
record key twice only if a run dies between the POST and the insert). Alerts hold aggregates
only: campaign, channel, variant, day, rate and threshold, never a customer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb

from activation.config import ActivationConfig, AlertsConfig
from activation.destinations import create
from activation.destinations.base import ConfigError, Destination, OutboundRecord, SyncContext
from activation.warehouse import table_exists

MART = "marts.fct_campaign_performance"
SENT_TABLE = "tideline_sync.alerts_sent"
CHECKS = ("delivery_failure_rate", "open_rate", "unsubscribe_spike", "complaint_rate")
COUNTS = ("sent", "failed", "delivered", "bounced", "unique_opens", "unsubscribes", "complaints")
ALL_VARIANTS = "all"

DDL = f"""
create schema if not exists tideline_sync;
create table if not exists {SENT_TABLE} (
    idempotency_key uuid primary key,
    check_name varchar not null,
    campaign varchar not null,
    channel varchar not null,
    variant varchar not null,
    day date not null,
    value double,
    threshold double,
    message varchar,
    destination varchar,
    sent_at timestamptz not null
)
"""


@dataclass(frozen=True)
class Alert:
    check: str  # one of CHECKS
    campaign: str
    channel: str
    variant: str  # 'all' for the unsubscribe spike (every variant together)
    day: dt.date  # the last send day of the evaluated window
    value: float  # the rate found
    threshold: float  # the limit it crossed
    message: str

    @property
    def idempotency_key(self) -> str:
        return alert_key(self.check, self.campaign, self.channel, self.variant, self.day)

    def fields(self) -> dict[str, Any]:
        """The alert as the webhook record's fields (aggregates only)."""
        return {
            "check": self.check,
            "campaign": self.campaign,
            "channel": self.channel,
            "variant": self.variant,
            "day": self.day.isoformat(),
            "value": round(self.value, 6),
            "threshold": round(self.threshold, 6),
            "message": self.message,
            "source": MART,
        }


def alert_key(check: str, campaign: str, channel: str, variant: str, day: dt.date) -> str:
    """UUID text: the first 128 bits of sha256(check|campaign|channel|variant|day)."""
    digest = hashlib.sha256(
        "|".join((check, campaign, channel, variant, day.isoformat())).encode()
    ).hexdigest()
    return str(uuid.UUID(hex=digest[:32]))


# --- evaluation (plain data) ------------------------------------------------------------------------


def _day(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _pct(value: float) -> str:
    return f"{value * 100:.2f}%"


def evaluate(rows: Iterable[Mapping[str, Any]], config: AlertsConfig) -> list[Alert]:
    """Alerts for the rows of marts.fct_campaign_performance (campaign, variant, channel, send_date
    and the counts in COUNTS; other columns are ignored), ordered by check, campaign, channel, variant."""
    rows = [r for r in rows if r.get("send_date") is not None]
    if not rows:
        return []
    latest = max(_day(r["send_date"]) for r in rows)
    window_start = latest - dt.timedelta(days=config.window_days - 1)
    where = f"on {latest.isoformat()}" if config.window_days == 1 else f"from {window_start} to {latest}"

    groups: dict[tuple[str, str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTS, 0))
    spike_now: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])  # unsubscribes, delivered
    spike_before: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    trailing_start = window_start - dt.timedelta(days=config.unsubscribe_spike.trailing_days)
    for r in rows:
        day = _day(r["send_date"])
        campaign, channel = str(r["campaign"]), str(r["channel"])
        variant = ALL_VARIANTS if r.get("variant") is None else str(r["variant"])
        unsubscribes, delivered = int(r.get("unsubscribes") or 0), int(r.get("delivered") or 0)
        if window_start <= day <= latest:
            totals = groups[(campaign, channel, variant)]
            for c in COUNTS:
                totals[c] += int(r.get(c) or 0)
            bucket = spike_now[(campaign, channel)]
        elif trailing_start <= day < window_start:
            bucket = spike_before[(campaign, channel)]
        else:
            continue
        bucket[0] += unsubscribes
        bucket[1] += delivered

    alerts: list[Alert] = []

    def judged(denominator: int, min_sample: int) -> bool:
        return denominator > 0 and denominator >= min_sample

    for (campaign, channel, variant), t in sorted(groups.items()):
        label = f"campaign {campaign}, channel {channel}, variant {variant} {where}"
        fail = config.delivery_failure_rate
        attempted = t["sent"] + t["failed"]
        if fail.enabled and judged(attempted, fail.min_sample):
            rate = (t["failed"] + t["bounced"]) / attempted
            if rate > fail.limit:
                alerts.append(
                    Alert(
                        "delivery_failure_rate",
                        campaign,
                        channel,
                        variant,
                        latest,
                        rate,
                        fail.limit,
                        f"delivery failure rate {_pct(rate)} is above {_pct(fail.limit)} for {label} "
                        f"({t['failed'] + t['bounced']} of {attempted} attempted messages failed or bounced)",
                    )
                )
        opens = config.open_rate
        # only email has an open pixel: an SMS or push "open" is its click, judged by nothing here
        if opens.enabled and channel == "email" and judged(t["delivered"], opens.min_sample):
            rate = t["unique_opens"] / t["delivered"]
            if rate < opens.limit:
                alerts.append(
                    Alert(
                        "open_rate",
                        campaign,
                        channel,
                        variant,
                        latest,
                        rate,
                        opens.limit,
                        f"open rate {_pct(rate)} is below {_pct(opens.limit)} for {label} "
                        f"({t['unique_opens']} human unique opens of {t['delivered']} delivered)",
                    )
                )
        complaints = config.complaint_rate
        if complaints.enabled and judged(t["delivered"], complaints.min_sample):
            rate = t["complaints"] / t["delivered"]
            if rate > complaints.limit:
                alerts.append(
                    Alert(
                        "complaint_rate",
                        campaign,
                        channel,
                        variant,
                        latest,
                        rate,
                        complaints.limit,
                        f"complaint rate {_pct(rate)} is above {_pct(complaints.limit)} for {label} "
                        f"({t['complaints']} spam complaints of {t['delivered']} delivered)",
                    )
                )

    spike = config.unsubscribe_spike
    if spike.enabled:
        for (campaign, channel), (unsubscribes, delivered) in sorted(spike_now.items()):
            if not judged(delivered, spike.min_sample):
                continue
            rate = unsubscribes / delivered
            before_unsubscribes, before_delivered = spike_before.get((campaign, channel), (0, 0))
            trailing = before_unsubscribes / before_delivered if before_delivered else 0.0
            threshold = max(spike.floor, spike.factor * trailing)
            if rate > threshold:
                alerts.append(
                    Alert(
                        "unsubscribe_spike",
                        campaign,
                        channel,
                        ALL_VARIANTS,
                        latest,
                        rate,
                        threshold,
                        f"unsubscribe rate {_pct(rate)} is above {_pct(threshold)} for campaign {campaign}, "
                        f"channel {channel} (all variants) {where} ({unsubscribes} unsubscribes of {delivered} "
                        f"delivered; the previous {spike.trailing_days} days: {_pct(trailing)}, limit "
                        f"max({_pct(spike.floor)}, {spike.factor:g} x {_pct(trailing)}))",
                    )
                )
    order = {c: i for i, c in enumerate(CHECKS)}
    return sorted(alerts, key=lambda a: (order[a.check], a.campaign, a.channel, a.variant))


# --- the warehouse ------------------------------------------------------------------------------------


def read_performance(con: duckdb.DuckDBPyConnection, config: AlertsConfig) -> list[dict[str, Any]] | None:
    """The mart's rows that evaluate() looks at (window plus trailing days), or None without the mart."""
    if not table_exists(con, *MART.split(".")):
        return None
    days_back = config.window_days - 1 + config.unsubscribe_spike.trailing_days
    cur = con.execute(
        f"""
        with latest as (select max(send_date) as day from {MART})
        select campaign, variant, channel, send_date, {", ".join(COUNTS)}
        from {MART}
        where send_date >= (select day from latest) - cast(? as integer)
        order by send_date, campaign, channel, variant
        """,
        [days_back],
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def already_sent(con: duckdb.DuckDBPyConnection, keys: Sequence[str]) -> set[str]:
    con.execute(DDL)
    if not keys:
        return set()
    found = con.execute(
        f"select cast(idempotency_key as varchar) from {SENT_TABLE} "
        "where idempotency_key in (select unnest(cast(? as uuid[])))",
        [list(keys)],
    ).fetchall()
    return {k for (k,) in found}


def record_sent(
    con: duckdb.DuckDBPyConnection, alerts: Sequence[Alert], destination: str, now: dt.datetime | None = None
) -> None:
    con.execute(DDL)
    sent_at = now or dt.datetime.now(dt.UTC)
    con.executemany(
        f"insert into {SENT_TABLE} values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) on conflict do nothing",
        [
            [
                a.idempotency_key,
                a.check,
                a.campaign,
                a.channel,
                a.variant,
                a.day,
                a.value,
                a.threshold,
                a.message,
                destination,
                sent_at,
            ]
            for a in alerts
        ],
    )


# --- sending ------------------------------------------------------------------------------------------


@dataclass
class SendReport:
    sent: list[Alert] = field(default_factory=list)  # accepted by the destination now
    already_sent: list[Alert] = field(default_factory=list)  # sent by an earlier evaluation: skipped
    failed: list[tuple[Alert, str]] = field(default_factory=list)  # not accepted: tried again next time

    def was_sent(self, alert: Alert) -> bool:
        return alert in self.sent


def send_alerts(
    con: duckdb.DuckDBPyConnection,
    alerts: Sequence[Alert],
    destination: Destination,
    *,
    now: dt.datetime | None = None,
) -> SendReport:
    """Send the alerts not sent before as one batch of records (one per alert) and record the accepted ones."""
    report = SendReport()
    done = already_sent(con, [a.idempotency_key for a in alerts])
    new = []
    for alert in alerts:
        (report.already_sent if alert.idempotency_key in done else new).append(alert)
    if not new:
        return report
    records = [OutboundRecord("", a.idempotency_key, "send", a.fields()) for a in new]
    context = SyncContext(
        sync_id=str(uuid.uuid4()),
        segment="alerts",
        destination=destination.name,
        mode="alert",
        content={"type": "campaign_performance_alert", "source": MART},
    )
    results = {r.idempotency_key: r for r in destination.send_batch(records, context)}
    for alert in new:
        result = results.get(alert.idempotency_key)
        if result is not None and result.status == "sent":
            report.sent.append(alert)
        else:
            report.failed.append((alert, result.error if result and result.error else "no result"))
    record_sent(con, report.sent, destination.name, now)
    return report


def notify(con: duckdb.DuckDBPyConnection, alerts: Sequence[Alert], config: ActivationConfig) -> SendReport:
    """send_alerts through the configured alert destination, created only when there is something new.

    A destination that cannot be built (not declared, its secret's environment variable unset)
    sends nothing: the new alerts come back as failed with the reason, and are tried again on
    the next evaluation; the check reports them rather than failing the run.
    """
    name = config.alerts.destination
    done = already_sent(con, [a.idempotency_key for a in alerts])
    new = [a for a in alerts if a.idempotency_key not in done]
    if not new:
        return SendReport(already_sent=list(alerts))
    try:
        if name not in config.destinations:
            raise ConfigError(
                f"alerts: destination {name!r} is not declared under destinations: in the activation config"
            )
        destination = create(name, config.destinations[name], config.env)
    except ConfigError as exc:
        old = [a for a in alerts if a.idempotency_key in done]
        return SendReport(already_sent=old, failed=[(a, str(exc)) for a in new])
    try:
        return send_alerts(con, alerts, destination)
    finally:
        destination.close()
