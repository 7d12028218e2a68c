"""Staff alerts on campaign performance: a table of checks over marts.campaign_alert_rates, sent once.

    rows = read_rates(con)                              # None when the mart does not exist yet
    alerts = evaluate(rows, alert_checks(config.alerts))  # plain data in, list[Alert] out
    report = notify(con, alerts, config)                # new alerts through the webhook, recorded

Every rate is computed in SQL, by the dbt model campaign_alert_rates (over the alert window,
with the rate definitions of fct_campaign_performance; docs/alerts.md); this module computes
none. A check is one row of a table: the rate column it reads, the column it is judged on
(its denominator, compared with `min_sample`), the direction that alerts and the threshold,
both from the `alerts:` section of config/activation.yml:

    check                  column                          sample                   alerts
    delivery_failure_rate  delivery_failure_rate           attempted                above `max`
    open_rate              open_rate (null but for email)  delivered                below `min`
    unsubscribe_spike      all_variants_unsubscribe_rate   all_variants_delivered   above max(`floor`,
                           (per campaign × channel)                                 `factor` × trailing_unsubscribe_rate)
    complaint_rate         complaint_rate                  delivered                above `max`

A rate is judged only when it is not null and its sample is > 0 and >= `min_sample`; limits
are strict (a failure rate of exactly 5% does not alert at max 0.05). An alert's day is the
window's last day.

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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb

from activation.config import ActivationConfig, AlertsConfig, SpikeThreshold
from activation.destinations import create
from activation.destinations.base import ConfigError, Destination, OutboundRecord, SyncContext
from activation.warehouse import table_exists

MART = "marts.campaign_alert_rates"
SENT_TABLE = "tideline_sync.alerts_sent"
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
    check: str  # one of CHECKS (RULES)
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


# --- the checks table ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """How a check reads marts.campaign_alert_rates (the part of a check that is not configured)."""

    check: str
    column: str  # the rate judged
    count: str  # its numerator, quoted in the message
    sample: str  # its denominator: judged only when > 0 and >= min_sample
    direction: str  # "above" or "below": which side of the limit alerts
    described: str  # the rate in words, for the message and the Dagster check
    counted: str  # the counts in words; fields: count, sample and the row's columns
    per_variant: bool = True  # False: once per campaign × channel (variant 'all')
    relative_to: str | None = None  # a column: the limit is max(threshold, factor × it)

    @property
    def summary(self) -> str:
        """The check in one sentence (the Dagster check's description)."""
        limit = f"max(threshold, factor × {self.relative_to})" if self.relative_to else "the threshold"
        return (
            f"{self.described.capitalize()} ({self.column} of {MART}) {self.direction} {limit}, "
            f"judged when {self.sample} >= min_sample."
        )


RULES = (
    Rule(
        "delivery_failure_rate",
        "delivery_failure_rate",
        "failed_or_bounced",
        "attempted",
        "above",
        "delivery failure rate",
        "{count} of {sample} attempted messages failed or bounced",
    ),
    Rule(
        "open_rate",
        "open_rate",
        "unique_opens",
        "delivered",
        "below",
        "open rate",
        "{count} human unique opens of {sample} delivered",
    ),
    Rule(
        "unsubscribe_spike",
        "all_variants_unsubscribe_rate",
        "all_variants_unsubscribes",
        "all_variants_delivered",
        "above",
        "unsubscribe rate",
        "{count} unsubscribes of {sample} delivered; the previous {trailing_days} days: {relative}, "
        "limit max({threshold}, {factor} x {relative})",
        per_variant=False,
        relative_to="trailing_unsubscribe_rate",
    ),
    Rule(
        "complaint_rate",
        "complaint_rate",
        "complaints",
        "delivered",
        "above",
        "complaint rate",
        "{count} spam complaints of {sample} delivered",
    ),
)
CHECKS = tuple(rule.check for rule in RULES)


@dataclass(frozen=True)
class AlertCheck:
    """One row of the checks table: a rule with its threshold and min_sample from the alerts config."""

    rule: Rule
    threshold: float
    min_sample: int
    factor: float = 0.0  # relative rules: times the relative_to column

    def limit(self, row: Mapping[str, Any]) -> float:
        if self.rule.relative_to is None:
            return self.threshold
        return max(self.threshold, self.factor * float(row[self.rule.relative_to] or 0.0))

    def judged(self, row: Mapping[str, Any]) -> bool:
        sample = row[self.rule.sample] or 0
        return row[self.rule.column] is not None and sample > 0 and sample >= self.min_sample

    def crossed(self, value: float, limit: float) -> bool:
        return value > limit if self.rule.direction == "above" else value < limit


def alert_checks(config: AlertsConfig) -> list[AlertCheck]:
    """The enabled checks, in the order of RULES, with their thresholds from the config."""
    checks = []
    for rule in RULES:
        configured = getattr(config, rule.check)
        if not configured.enabled:
            continue
        if isinstance(configured, SpikeThreshold):
            checks.append(AlertCheck(rule, configured.floor, configured.min_sample, configured.factor))
        else:
            checks.append(AlertCheck(rule, configured.limit, configured.min_sample))
    return checks


# --- evaluation (plain data) ------------------------------------------------------------------------


def _day(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _pct(value: float) -> str:
    return f"{value * 100:.2f}%"


def _window(row: Mapping[str, Any]) -> str:
    end = _day(row["window_end"])
    return f"on {end}" if int(row["window_days"]) == 1 else f"from {_day(row['window_start'])} to {end}"


def _alert(check: AlertCheck, row: Mapping[str, Any]) -> Alert | None:
    """The check's alert for one row of the mart, or None when the row is not judged or within the limit."""
    if not check.judged(row):
        return None
    rule, value, limit = check.rule, float(row[check.rule.column]), check.limit(row)
    if not check.crossed(value, limit):
        return None
    campaign, channel = str(row["campaign"]), str(row["channel"])
    variant = str(row["variant"]) if rule.per_variant else ALL_VARIANTS
    scope = f"variant {variant}" if rule.per_variant else "(all variants)"
    counted = rule.counted.format_map(
        dict(row)
        | dict(
            count=row[rule.count],
            sample=row[rule.sample],
            relative=_pct(float(row[rule.relative_to] or 0.0)) if rule.relative_to else "",
            threshold=_pct(check.threshold),
            factor=f"{check.factor:g}",
        )
    )
    message = (
        f"{rule.described} {_pct(value)} is {rule.direction} {_pct(limit)} for campaign {campaign}, "
        f"channel {channel}{',' if rule.per_variant else ''} {scope} {_window(row)} ({counted})"
    )
    return Alert(rule.check, campaign, channel, variant, _day(row["window_end"]), value, limit, message)


def evaluate(rows: Iterable[Mapping[str, Any]], checks: Sequence[AlertCheck]) -> list[Alert]:
    """Alerts for the rows of marts.campaign_alert_rates under the checks table, ordered by check,
    campaign, channel, variant. A check per campaign × channel judges each pair once."""
    rows = list(rows)
    alerts: list[Alert] = []
    for check in checks:
        seen: set[tuple[str, str, str]] = set()
        for row in rows:
            key = (
                row["campaign"],
                row["channel"],
                row["variant"] if check.rule.per_variant else ALL_VARIANTS,
            )
            if key not in seen:
                seen.add(key)
                if (alert := _alert(check, row)) is not None:
                    alerts.append(alert)
    order = {c: i for i, c in enumerate(CHECKS)}
    return sorted(alerts, key=lambda a: (order[a.check], a.campaign, a.channel, a.variant))


# --- the warehouse ------------------------------------------------------------------------------------


def read_rates(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]] | None:
    """The rows of marts.campaign_alert_rates (the alert window only: a few per campaign), or None
    without the mart."""
    if not table_exists(con, *MART.split(".")):
        return None
    cur = con.execute(f"select * from {MART} order by campaign, channel, variant")
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
