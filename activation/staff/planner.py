"""Making notifications: rules (activation.staff.rules) -> routing (activation.staff.routing) ->
one row each in tideline_staff.notifications, made once (its id is a hash of rule, customer, event
key and recipient; a row that exists is never made again, whatever happened to it). Journey notify
steps hand their entries here too (`enqueue_journey`: rule `journey:<journey>:<step>`, event key
the entry id), and the daily digests are made here (`make_digests`).

Nothing is sent here: activation.staff.deliver sends what is due.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass

import duckdb

from activation.staff.config import StaffConfig
from activation.staff.routing import ROUTED, route, rule_routes
from activation.staff.rules import CANDIDATES, STAFF, add_candidates, create_candidates
from activation.staff.store import SCHEMA, ensure_schema
from activation.warehouse import quote_relation, table_exists, transaction


@dataclass
class Planned:
    candidates: int = 0  # (rule, customer, event) rows the rules found, new or not
    created: int = 0  # notifications made by this run
    by_rule: dict[str, int] | None = None  # created, per rule


def plan_notifications(
    con: duckdb.DuckDBPyConnection, staff: StaffConfig, as_of: dt.date, now: dt.datetime
) -> Planned:
    """Every enabled rule's candidates as of `as_of`, routed, made into notifications at `now`
    (naive UTC)."""
    ensure_schema(con)
    create_candidates(con)
    found = sum(add_candidates(con, rule, as_of) for rule in staff.enabled_rules)
    rule_routes(con, staff)
    route(con, staff)
    by_rule = _insert(con, now)
    return Planned(found, sum(by_rule.values()), by_rule)


def enqueue_journey(con: duckdb.DuckDBPyConnection, staff: StaffConfig, rows: str, now: dt.datetime) -> int:
    """A journey notify step's entries, handed over: `rows` (a relation from code) has entry_id,
    customer_id, journey, step, message, route and optionally destination (the step's: every
    notification of the step goes there, as a rule's `destination:` does). Each becomes one
    notification per recipient (rule `journey:<journey>:<step>`, event key the entry id), made
    once; the number made."""
    ensure_schema(con)
    rel = quote_relation(rows)
    con.execute(
        f"""create or replace temp table _staff_journey_candidates as
            select 'journey:' || journey || ':' || step as rule, 'journey' as rule_kind, customer_id,
                   entry_id as event_key, cast(? as timestamp) as occurred_at,
                   'Journey ' || journey || ', step ' || step || ': customer ' || customer_id
                       || coalesce(': ' || nullif(message, ''), '') as message, route
            from {rel}""",
        [now],
    )
    has_destination = "destination" in [d[0] for d in con.execute(f"select * from {rel} limit 0").description]
    override = "destination" if has_destination else "cast(null as varchar)"
    con.execute(
        f"""create or replace temp table _staff_rule_routes as
            select distinct 'journey:' || journey || ':' || step as rule, route, {override} as override,
                   false as digest
            from {rel}"""
    )
    route(con, staff, "_staff_journey_candidates")
    return sum(_insert(con, now).values())


def _insert(con: duckdb.DuckDBPyConnection, now: dt.datetime) -> dict[str, int]:
    """The routed rows not made before, made now; the number made per rule."""
    con.execute(
        f"""create or replace temp table _staff_new as
            select r.* from {ROUTED} as r
            where r.notification_id not in (select notification_id from {SCHEMA}.notifications)"""
    )
    con.execute(
        f"""insert into {SCHEMA}.notifications (
                notification_id, rule, rule_kind, customer_id, event_key, staff_id, recipient, route,
                fell_back, fallback_reason, destination, handle_kind, message, link, via_digest,
                occurred_at, created_at, due_at, status, updated_at)
            select notification_id, rule, rule_kind, customer_id, event_key, staff_id, recipient, route,
                   fell_back, fallback_reason, destination, handle_kind, message, link, via_digest,
                   occurred_at, $now, $now, case when via_digest then 'in_digest' else 'pending' end, $now
            from _staff_new
            on conflict do nothing""",
        {"now": now},
    )
    return dict(con.execute("select rule, count(*) from _staff_new group by 1 order by 1").fetchall())


def staff_zones(
    con: duckdb.DuckDBPyConnection, staff: StaffConfig, ids: list[str]
) -> dict[str, zoneinfo.ZoneInfo]:
    """Each employee's time zone (dim_staff.time_zone, else the file's default_timezone)."""
    default = zoneinfo.ZoneInfo(staff.default_timezone)
    zones: dict[str, zoneinfo.ZoneInfo] = {i: default for i in ids}
    if not ids or not table_exists(con, "marts", "dim_staff"):
        return zones
    for staff_id, zone in con.execute(
        f"select staff_id, time_zone from {STAFF} where staff_id in (select unnest(?))", [ids]
    ).fetchall():
        try:
            zones[staff_id] = zoneinfo.ZoneInfo(zone) if zone else default
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            zones[staff_id] = default
    return zones


def local_day(moment: dt.datetime, zone: zoneinfo.ZoneInfo) -> dt.date:
    """The day of naive-UTC `moment` in `zone`."""
    return moment.replace(tzinfo=dt.UTC).astimezone(zone).date()


def make_digests(con: duckdb.DuckDBPyConnection, staff: StaffConfig, now: dt.datetime) -> int:
    """One digest per employee and local day that has ended (at `now`, in their time zone), listing
    that day's notifications that wait for it, made once (id: hash of digest, staff and day); its
    members point at it. The number made."""
    ensure_schema(con)
    members = con.execute(
        f"""select notification_id, staff_id, created_at, destination, handle_kind, message
            from {SCHEMA}.notifications
            where status = 'in_digest' and digest_id is null and staff_id is not null
            order by created_at, notification_id"""
    ).fetchall()
    if not members:
        return 0
    zones = staff_zones(con, staff, sorted({m[1] for m in members}))
    days: dict[tuple[str, dt.date], list[tuple]] = defaultdict(list)
    for m in members:
        day = local_day(m[2], zones[m[1]])
        if local_day(now, zones[m[1]]) > day:  # the day is over where the employee is
            days[(m[1], day)].append(m)
    made = 0
    for (staff_id, day), rows in sorted(days.items()):
        digest_id = hashlib.sha256(f"digest|{staff_id}|{day.isoformat()}".encode()).hexdigest()[:32]
        lines = "\n".join(f"- {r[5]}" for r in rows)
        message = f"Daily digest for {staff_id}, {day.isoformat()}: {len(rows)} notification(s)\n{lines}"
        destination, kind = rows[-1][3], rows[-1][4]
        with transaction(con):
            con.execute(
                f"""insert into {SCHEMA}.notifications (
                        notification_id, rule, rule_kind, customer_id, event_key, staff_id, recipient, route,
                        fell_back, destination, handle_kind, message, link, via_digest, created_at, due_at,
                        status, updated_at)
                    values (?, 'digest', 'digest', null, ?, ?, ?, 'digest', false, ?, ?, ?, ?, false, ?, ?,
                            'pending', ?)
                    on conflict do nothing""",
                [
                    digest_id,
                    day.isoformat(),
                    staff_id,
                    f"staff:{staff_id}",
                    destination,
                    kind,
                    message,
                    staff.link_base_url,
                    now,
                    now,
                    now,
                ],
            )
            con.execute(
                f"update {SCHEMA}.notifications set digest_id = ?, updated_at = ? "
                "where notification_id in (select unnest(?)) and digest_id is null",
                [digest_id, now, [r[0] for r in rows]],
            )
        made += 1
    return made


def quiet_until(now: dt.datetime, zone: zoneinfo.ZoneInfo, start: int, end: int) -> dt.datetime | None:
    """When the employee's quiet hours (from `start` to `end` o'clock in `zone`) end, as naive UTC,
    if `now` (naive UTC) is inside them; else None. start == end: no quiet hours."""
    if start == end:
        return None
    local = now.replace(tzinfo=dt.UTC).astimezone(zone)
    hour = local.hour + local.minute / 60 + local.second / 3600
    inside = start <= hour < end if start < end else hour >= start or hour < end
    if not inside:
        return None
    day = local.date() + dt.timedelta(days=1) if start > end and hour >= start else local.date()
    ends = dt.datetime.combine(day, dt.time(end), tzinfo=zone)
    return ends.astimezone(dt.UTC).replace(tzinfo=None)


__all__ = ["CANDIDATES", "Planned", "enqueue_journey", "make_digests", "plan_notifications", "quiet_until"]
