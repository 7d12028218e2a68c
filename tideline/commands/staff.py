"""`tideline staff notify [--at ISO] [--as-of YYYY-MM-DD]`: one staff notification run outside Dagster.

What the asset `staff/notifications` runs (activation.staff.run): the rules of
config/staff_notifications.yml (next to the activation config) as of the as-of date, the daily
digests whose day has ended, and the sends due at `--at` (default now), then one line of counts
per rule and status (ids and counts only). Without a rules file it says so and exits 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Mapping
from pathlib import Path

from activation.journeys.clock import parse_clock
from tideline.commands.run import (
    activation_config_of,
    connect_warehouse,
    os_user,
    settings_from,
    staff_config_of,
    sync_limits_of,
    today,
)


def add_parser(sub: argparse._SubParsersAction, home_help: str, warehouse_help: str) -> None:
    p = sub.add_parser("staff", help="staff notifications: run them now (docs/leads.md)")
    verbs = p.add_subparsers(dest="verb", required=True)
    q = verbs.add_parser("notify", help="make the notifications the rules find and send what is due")
    q.add_argument(
        "--at", type=parse_clock, default=None, help="the clock of sends and quiet hours (ISO, UTC)"
    )
    q.add_argument("--as-of", default=None, help="the marts' date the rules read (default: today)")
    q.add_argument("--warehouse", default=None, help=warehouse_help)
    q.add_argument("--home", default=None, help=home_help)
    q.set_defaults(func=cmd_staff_notify)


def cmd_staff_notify(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from activation.destinations.base import ConfigError
    from activation.staff.config import staff_config_path
    from activation.staff.deliver import Sender
    from activation.staff.run import run_staff_notifications

    settings = settings_from(args, env)
    try:
        config = activation_config_of(settings, env)
        staff = staff_config_of(settings, config)
    except ConfigError as exc:
        print(f"tideline: {exc}", file=sys.stderr)
        return 2
    if staff is None:
        print(
            f"tideline: no staff notifications file {staff_config_path(settings.activation_config)}: nothing to notify",
            file=sys.stderr,
        )
        return 2
    sender = Sender(
        config, Path(settings.raw_dir), sync_limits_of(settings), workers=2, launched_by=f"cli:{os_user()}"
    )
    as_of = dt.date.fromisoformat(settings.as_of or today())
    clock = args.at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    con = connect_warehouse(settings)
    try:
        result = run_staff_notifications(con, staff, sender, as_of, clock)
    finally:
        con.close()
    for error in result.delivered.errors:
        print(f"tideline: {error}", file=sys.stderr)
    print(
        json.dumps(
            {
                "made": result.planned.created,
                "made_by_rule": result.planned.by_rule,
                "digests": result.digests,
                "deferred_quiet_hours": result.delivered.deferred,
                "by_status": result.by_status,
            },
            sort_keys=True,
        )
    )
    return 0
