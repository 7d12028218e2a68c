"""Sending the notifications that are due, through the activation engine and its ledger, as journey
steps do (activation/journeys/deliver.py): a keyed message binding (SyncBinding.row_key =
notification_id) with no channel, so no customer consent, caps or quiet hours apply (staff quiet
hours are applied here, before queueing), and the ledger gives exactly once:

    segment          staff_notifications
    destination      the team channel or an override (a configured webhook), `<chat>:<staff_id>`
                     (the chat destination's settings with the employee's handle as its url: one
                     sync per employee, so a dead or slow chat endpoint holds back only its own
                     messages), or the email destination (one sync for all email handles)
    customer         <recipient>#<notification_id> (recipient: staff:<staff_id> or team): never the
                     customer the notification is about, so no customer consent or suppression
                     applies and an unsubscribe link in a staff email cannot touch that customer;
                     unique per row, as the engine wants one row per customer key
    idempotency key  destination | segment | <recipient>#<id> | staff_notifications:v1:<id>

The recipient's handle decides: a chat (webhook) handle gets a signed POST, an email handle an
email. One run:

1. statuses are read back from the ledger (a run killed after sending and before recording them
   loses nothing: the ledger says what happened, and the engine never sends a key twice);
2. notifications about a customer erased since (tideline_sync.erased_identities) are skipped;
3. due notifications whose employee is in quiet hours are deferred to when they end;
4. each destination's due notifications (pending, failed earlier, deferred and now due) are queued
   and the engine sends them (failed: retried next run; policies.max_attempts failures: dead);
5. statuses are read back again, and digest members take their digest's status.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import duckdb

from activation.activate import activate
from activation.config import ActivationConfig, SyncBinding
from activation.destinations.base import ConfigError
from activation.ledger import SCHEMA as LEDGER
from activation.planner import params as binding_params
from activation.planner import row_message_key_sql
from activation.privacy.erasure import erased_customers_sql
from activation.staff.config import StaffConfig
from activation.staff.planner import quiet_until, staff_zones
from activation.staff.rules import STAFF
from activation.staff.store import QUEUE, SCHEMA, ensure_schema
from activation.warehouse import DuckDBLimits, execute, table_exists

log = logging.getLogger(__name__)

SEGMENT = "staff_notifications"
CAMPAIGN = "staff_notifications"
CONTENT_VERSION = "v1"
DUE = ("pending", "failed", "deferred")
WEBHOOK_FIELDS = {
    "rule": "rule",
    "customer_id": "about_customer",
    "event": "event_key",
    "text": "message",
    "link": "link",
    "route": "route",
    "fell_back": "fell_back",
    "staff_id": "staff_id",
}
EMAIL_FIELDS = {"email": "email", "subject": "subject", "text": "message", "link": "link"}
EMAIL_CONTENT = {"subject": "{{ subject }}", "text": "{{ text }}\n\nOpen: {{ link }}\n"}
# the ledger's status -> the notification's (others: in flight, released: unchanged)
_STATUS = {
    "sent": "sent",
    "unknown": "unknown",
    "failed": "failed",
    "dead_letter": "dead",
    "skipped": "skipped",
}


@dataclass
class Delivered:
    deferred: int = 0  # held by quiet hours this run
    skipped: int = 0  # the customer was erased
    by_destination: dict[str, int] = field(default_factory=dict)  # queued per destination
    errors: list[str] = field(default_factory=list)  # destinations that could not be built


@dataclass(frozen=True)
class Sender:
    """What sends: the activation config (destinations, policies), the landing dir (consent
    revocations and provider webhooks, as for any engine run), the DuckDB limits."""

    config: ActivationConfig
    raw_dir: Path
    limits: DuckDBLimits
    workers: int = 2
    launched_by: str | None = None


def deliver_due(
    con: duckdb.DuckDBPyConnection, staff: StaffConfig, sender: Sender, now: dt.datetime
) -> Delivered:
    """Send what is due at `now` (naive UTC); see the module docstring."""
    ensure_schema(con)
    out = Delivered()
    refresh_from_ledger(con, now)
    out.skipped = _skip_erased(con, now)
    out.deferred = _defer_quiet(con, staff, now)
    groups = con.execute(
        f"""select destination, handle_kind, count(*) from {SCHEMA}.notifications
            where status in (select unnest(?)) and due_at <= ? group by 1, 2 order by 1""",
        [list(DUE), now],
    ).fetchall()
    for destination, kind, n in groups:
        out.by_destination[destination] = n
        try:
            _send(con, staff, sender, destination, kind, now)
        except ConfigError as exc:  # this destination cannot be used now: the others go on
            out.errors.append(str(exc))
            _mark(con, destination, "failed", str(exc), now)
        finally:
            con.execute(f"drop table if exists {SCHEMA}.{QUEUE}")
    refresh_from_ledger(con, now)
    return out


def binding(destination: str, kind: str) -> SyncBinding:
    """The engine's binding of one destination's staff notifications."""
    email = kind == "email"
    return SyncBinding(
        segment=SEGMENT,
        relation=f"{SCHEMA}.{QUEUE}",
        destination=destination,
        mode="message",
        channel=None,
        fields=dict(EMAIL_FIELDS if email else WEBHOOK_FIELDS),
        campaign=CAMPAIGN,
        content=dict(EMAIL_CONTENT if email else {"kind": "staff_notification"}),
        content_version=CONTENT_VERSION,
        frequency_cap=None,
        row_key="notification_id",
    )


def _send(
    con: duckdb.DuckDBPyConnection,
    staff: StaffConfig,
    sender: Sender,
    destination: str,
    kind: str,
    now: dt.datetime,
) -> None:
    config = sender.config
    handle = "cast(null as varchar)"
    per_person = destination not in config.destinations  # <chat>:<staff_id>
    if per_person or kind == "email":
        handle = "h.notify_handle"
    have_staff = table_exists(con, "marts", "dim_staff")
    join = (
        f"left join {STAFF} as h on h.staff_id = n.staff_id and h.notify_kind = ? and coalesce(h.is_active, true)"
        if have_staff
        else "left join (select null as staff_id, null as notify_handle where false) as h on h.staff_id = n.staff_id and ? is not null"
    )
    con.execute(
        f"""create or replace table {SCHEMA}.{QUEUE} as
            select n.notification_id, n.recipient || '#' || n.notification_id as customer_id, n.rule, n.customer_id as about_customer,
                   n.event_key, n.message, n.link, n.route, n.fell_back, n.staff_id, {handle} as handle,
                   {handle} as email,
                   case when n.rule = 'digest' then 'Tideline digest: ' || n.event_key
                        else 'Tideline: ' || n.rule || coalesce(' - customer ' || n.customer_id, '') end as subject
            from {SCHEMA}.notifications as n {join}
            where n.destination = ? and n.status in (select unnest(?)) and n.due_at <= ?""",
        ["webhook" if per_person else "email", destination, list(DUE), now],
    )
    if per_person or kind == "email":
        missing = con.execute(f"select count(*) from {SCHEMA}.{QUEUE} where handle is null").fetchone()[0]
        if missing:  # the employee lost the handle (or left) since: tried again next run
            con.execute(
                f"""update {SCHEMA}.notifications set status = 'failed', updated_at = ?,
                       status_reason = 'the employee has no usable ' || handle_kind || ' handle any more'
                    where notification_id in (select notification_id from {SCHEMA}.{QUEUE} where handle is null)""",
                [now],
            )
            con.execute(f"delete from {SCHEMA}.{QUEUE} where handle is null")
    urls = [u for (u,) in con.execute(f"select distinct handle from {SCHEMA}.{QUEUE}").fetchall()]
    if not urls and (per_person or kind == "email"):
        return
    b = binding(destination, kind)
    if per_person:
        if staff.chat_destination is None or len(urls) != 1:
            raise ConfigError(f"destination {destination}: no chat destination configured for this employee")
        template = dict(config.destinations[staff.chat_destination])
        url = urls[0]
        if staff.redirect_handles_to:  # a sandbox: the employee's path on the test endpoint
            url = staff.redirect_handles_to.rstrip("/") + (urlsplit(url).path or "/")
        config = dataclasses.replace(
            config, destinations={**config.destinations, destination: {**template, "url": url}}
        )
    key = row_message_key_sql("q.customer_id", "q.notification_id")
    execute(
        con,
        f"""update {SCHEMA}.notifications as n set idempotency_key = k.key
            from (select q.notification_id, {key} as key from {SCHEMA}.{QUEUE} as q) as k
            where n.notification_id = k.notification_id""",
        binding_params(b),
    )
    activate(
        con,
        b,
        config,
        sender.raw_dir,
        limits=sender.limits,
        workers=sender.workers,
        now=now,
        launched_by=sender.launched_by,
    )


def refresh_from_ledger(con: duckdb.DuckDBPyConnection, now: dt.datetime) -> int:
    """Every notification not final yet takes its key's latest ledger status (sent, unknown,
    failed, dead, skipped), its attempts and first sent time; digest members take their digest's.
    The number changed."""
    if not table_exists(con, LEDGER, "delivery_log"):
        return 0
    mapping = "case l.status " + " ".join(f"when '{k}' then '{v}'" for k, v in _STATUS.items()) + " end"
    execute(
        con,
        f"""create or replace temp table _staff_ledger as
            select idempotency_key, arg_max(status, seq) as status,
                   arg_max(coalesce(error, reason), seq) as detail, max(attempt) as attempts,
                   min(recorded_at) filter (where status = 'sent') as sent_at
            from {LEDGER}.delivery_log
            where idempotency_key in (select idempotency_key from {SCHEMA}.notifications
                                      where idempotency_key is not null
                                        and status not in ('sent', 'unknown', 'dead', 'skipped'))
            group by idempotency_key""",
        {},
    )
    changed = con.execute(
        f"""update {SCHEMA}.notifications as n
            set status = {mapping}, status_reason = l.detail, attempts = coalesce(l.attempts, n.attempts),
                sent_at = coalesce(n.sent_at, l.sent_at), updated_at = ?
            from _staff_ledger as l
            where n.idempotency_key = l.idempotency_key and l.status in (select unnest(?))
              and (n.status <> {mapping} or n.status_reason is distinct from l.detail)""",
        [now, list(_STATUS)],
    ).fetchone()[0]
    con.execute(
        f"""update {SCHEMA}.notifications as m
            set status = d.status, sent_at = d.sent_at, status_reason = 'in the digest ' || d.event_key, updated_at = ?
            from {SCHEMA}.notifications as d
            where m.digest_id = d.notification_id and d.status in ('sent', 'unknown', 'dead')
              and m.status = 'in_digest'""",
        [now],
    )
    return changed


def _skip_erased(con: duckdb.DuckDBPyConnection, now: dt.datetime) -> int:
    erased = erased_customers_sql(con)
    if not erased:
        return 0
    return con.execute(
        f"""update {SCHEMA}.notifications set status = 'skipped', status_reason = 'the customer was erased',
                   updated_at = ?
            where status in ('pending', 'failed', 'deferred', 'in_digest') and customer_id in ({erased})""",
        [now],
    ).fetchone()[0]


def _defer_quiet(con: duckdb.DuckDBPyConnection, staff: StaffConfig, now: dt.datetime) -> int:
    """Due notifications to employees now in their quiet hours: deferred to when they end."""
    ids = [
        s
        for (s,) in con.execute(
            f"""select distinct staff_id from {SCHEMA}.notifications
                where staff_id is not null and status in (select unnest(?)) and due_at <= ?""",
            [list(DUE), now],
        ).fetchall()
    ]
    held = 0
    for staff_id, zone in staff_zones(con, staff, ids).items():
        until = quiet_until(now, zone, staff.quiet_hours_start, staff.quiet_hours_end)
        if until is None:
            continue
        held += con.execute(
            f"""update {SCHEMA}.notifications
                set status = 'deferred', status_reason = 'quiet hours', due_at = ?, updated_at = ?
                where staff_id = ? and status in (select unnest(?)) and due_at <= ?""",
            [until, now, staff_id, list(DUE), now],
        ).fetchone()[0]
    return held


def _mark(
    con: duckdb.DuckDBPyConnection, destination: str, status: str, reason: str, now: dt.datetime
) -> None:
    con.execute(
        f"""update {SCHEMA}.notifications set status = ?, status_reason = ?, updated_at = ?
            where destination = ? and status in (select unnest(?)) and due_at <= ?""",
        [status, reason[:300], now, destination, list(DUE), now],
    )
