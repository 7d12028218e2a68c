"""One staff notification run, start to end (what the Dagster asset `staff/notifications` and
`tideline staff notify` run): make the notifications the rules find as of the as-of date, make the
digests whose day has ended, send what is due at `now`, and count by rule and status.
Plain data in, plain data out: no Dagster."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import duckdb

from activation.staff.config import StaffConfig
from activation.staff.deliver import Delivered, Sender, deliver_due
from activation.staff.planner import Planned, make_digests, plan_notifications
from activation.staff.store import SCHEMA


@dataclass
class StaffRun:
    planned: Planned
    digests: int
    delivered: Delivered
    by_status: dict[str, int] = field(default_factory=dict)  # every notification so far, by status


def run_staff_notifications(
    con: duckdb.DuckDBPyConnection,
    staff: StaffConfig,
    sender: Sender,
    as_of: dt.date,
    now: dt.datetime,
) -> StaffRun:
    """Plan, digest and deliver; `now` is naive UTC (the clock of sends and quiet hours), `as_of` the
    marts' date (the rules' windows end there)."""
    planned = plan_notifications(con, staff, as_of, now)
    digests = make_digests(con, staff, now)
    delivered = deliver_due(con, staff, sender, now)
    by_status = dict(
        con.execute(f"select status, count(*) from {SCHEMA}.notifications group by 1 order by 1").fetchall()
    )
    return StaffRun(planned, digests, delivered, by_status)
