"""`tideline journey check|list|tick|simulate`: journeys from the command line.

    tideline journey check                         every file of config/journeys checks (exit 2 if not)
    tideline journey list [--warehouse FILE]       each journey: status, version, steps, in flight
    tideline journey tick [NAME ...] [--at ISO] [--dry-run]
    tideline journey simulate NAME --from D1 --to D2 [--every-minutes 60] [--json]
    tideline journey send-test NAME --to LIST [--step STEP]   messages to internal test accounts

tick runs one tick now (or at --at) outside Dagster, like one run of the journey_ticks job (the
Dagster schedule is the normal way; this is for a person at a terminal). simulate replays the
history from D1 00:00 to D2 24:00 (UTC) through the journey and sends nothing. Both wait for the
warehouse while a run holds it (TIDELINE_LOCK_WAIT_SECONDS). The activation config's ${VAR}s and
secrets come from the environment, and from the local destinations' sandbox secrets when `make run`
wrote them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from activation.journeys.clock import parse_clock
from tideline.commands.run import (
    activation_config_of,
    connect_warehouse,
    os_user,
    settings_from,
    staff_config_of,
    sync_limits_of,
)
from tideline.commands.send_test import accounts_list_known
from tideline.settings import Settings

if TYPE_CHECKING:
    from activation.journeys.tick import TickResult


def add_parser(sub: argparse._SubParsersAction, home_help: str, warehouse_help: str) -> None:
    p = sub.add_parser("journey", help="check, list, tick or simulate the journeys of config/journeys")
    verbs = p.add_subparsers(dest="verb", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--warehouse", default=None, help=warehouse_help)
        q.add_argument("--home", default=None, help=home_help)
        q.add_argument("--raw-dir", default=None, help="landing zone (default: $TIDELINE_RAW_DIR)")

    check = verbs.add_parser("check", help="check every journey file (errors name file, step and field)")
    check.set_defaults(func=cmd_journey_check)
    show = verbs.add_parser("list", help="each journey's status, version, steps and entries in flight")
    common(show)
    show.set_defaults(func=cmd_journey_list)
    tick = verbs.add_parser("tick", help="one tick of the journeys now (outside Dagster)")
    tick.add_argument("names", nargs="*", help="journeys to tick (default: all)")
    tick.add_argument("--at", type=parse_clock, default=None, help="the clock, e.g. 2026-03-10T09:30 (UTC)")
    tick.add_argument("--dry-run", action="store_true", help="decide, send nothing")
    common(tick)
    tick.set_defaults(func=cmd_journey_tick)
    test = verbs.add_parser("send-test", help="send a journey's messages to internal test accounts")
    test.add_argument("name")
    test.add_argument("--to", required=True, help="a list of the activation config's test_accounts")
    test.add_argument("--step", action="append", default=[], help="only this message step (repeatable)")
    common(test)
    test.set_defaults(func=cmd_journey_send_test)
    sim = verbs.add_parser("simulate", help="replay the history through a journey, sending nothing")
    sim.add_argument("name")
    sim.add_argument("--from", dest="start", type=dt.date.fromisoformat, required=True)
    sim.add_argument("--to", dest="end", type=dt.date.fromisoformat, required=True)
    sim.add_argument("--every-minutes", type=int, default=60, help="tick interval (default 60)")
    sim.add_argument("--json", action="store_true")
    common(sim)
    sim.set_defaults(func=cmd_journey_simulate)


def load_journeys_of(settings: Settings, env: Mapping[str, str]):  # noqa: ANN202 - list[Journey]
    """The journeys of the settings' folder, checked against the activation config."""
    return _load(settings, env)[1]


def _load(settings: Settings, env: Mapping[str, str]):  # noqa: ANN202 - (config, journeys)
    from activation.journeys.files import journeys_dir, load_project_journeys

    config = activation_config_of(settings, env)
    return config, load_project_journeys(journeys_dir(settings.journeys_dir), config)


def cmd_journey_check(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from activation.destinations.base import ConfigError
    from activation.journeys.parse import describe_journey
    from activation.journeys.spec import JourneyError

    settings = Settings.from_env(env)
    try:
        _, journeys = _load(settings, env)
    except (JourneyError, ConfigError) as exc:
        print(f"tideline: {exc}", file=sys.stderr)
        return 2
    for j in journeys:
        print(f"{j.name} ({j.status}, version {j.version}): {len(j.steps)} steps")
        for line in describe_journey(j):
            print(f"  {line}")
    return 0


def cmd_journey_list(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from activation.journeys.store import SCHEMA
    from activation.warehouse import table_exists

    settings = settings_from(args, env)
    _, journeys = _load(settings, env)
    in_flight: dict[str, int] = {}
    if settings.warehouse.is_file():
        con = connect_warehouse(settings, read_only=True)
        try:
            if table_exists(con, SCHEMA, "entries"):
                in_flight = dict(
                    con.execute(
                        f"select journey, count(*) from {SCHEMA}.entries where exited_at is null group by 1"
                    ).fetchall()
                )
        finally:
            con.close()
    for j in journeys:
        print(
            f"{j.name:<24} {j.status:<9} version {j.version}  {len(j.steps)} steps  "
            f"{in_flight.get(j.name, 0):,} in flight"
        )
    return 0


def tick_journeys(
    settings: Settings,
    env: Mapping[str, str],
    clock: dt.datetime,
    names: Sequence[str] = (),
    dry_run: bool = False,
) -> list[TickResult]:
    """One tick of the journeys (all, or `names`) at `clock`, outside Dagster: what `tideline journey
    tick` and the demo loop's journey days run. `env`: the activation config's ${VAR} values."""
    from activation.journeys.deliver import EngineDelivery
    from activation.journeys.files import project_catalog
    from activation.journeys.run import run_ticks

    config, journeys = _load(settings, env)
    unknown = set(names) - {j.name for j in journeys}
    if unknown:
        raise ValueError(f"no journey named {', '.join(sorted(unknown))} in config/journeys")
    chosen = [j for j in journeys if not names or j.name in names]
    staff = staff_config_of(settings, config)
    deliver = EngineDelivery(
        config,
        settings.raw_dir,
        sync_limits_of(settings),
        dry_run=dry_run,
        launched_by=f"cli:{os_user()}",
        staff=staff,
    )
    con = connect_warehouse(settings)
    try:
        return run_ticks(
            con,
            chosen,
            clock,
            deliver=deliver,
            catalog=project_catalog(),
            raw_dir=settings.raw_dir,
            default_timezone=config.policies.default_timezone,
        )
    finally:
        con.close()


def cmd_journey_tick(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    settings = settings_from(args, env)
    clock = args.at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for r in tick_journeys(settings, env, clock, args.names, args.dry_run):
        print(json.dumps({"journey": r.journey, **r.as_metadata()}, sort_keys=True))
    return 0


def cmd_journey_send_test(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from activation.journeys.deliver import EngineDelivery
    from activation.journeys.testsend import send_test

    settings = settings_from(args, env)
    config, journeys = _load(settings, env)
    found = [j for j in journeys if j.name == args.name]
    if not found:
        print(f"tideline: no journey named {args.name} in config/journeys", file=sys.stderr)
        return 2
    if not accounts_list_known(config, args.to):
        return 2
    deliver = EngineDelivery(config, Path(settings.raw_dir), sync_limits_of(settings))
    con = connect_warehouse(settings)
    try:
        results = send_test(
            con,
            found[0],
            config.test_accounts[args.to],
            deliver,
            dt.datetime.now(dt.UTC).replace(tzinfo=None),
            list_name=args.to,
            steps=tuple(args.step),
        )
    finally:
        con.close()
    for step, outcome in results.items():
        print(json.dumps({"journey": args.name, "step": step, **outcome}, sort_keys=True))
    return 0


def cmd_journey_simulate(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from activation.journeys.deliver import EngineDelivery
    from activation.journeys.files import project_catalog
    from activation.journeys.simulate import simulate

    settings = settings_from(args, env)
    if not settings.warehouse.is_file():
        print(f"tideline: no warehouse at {settings.warehouse}: run `tideline run` first", file=sys.stderr)
        return 1
    config, journeys = _load(settings, env)
    found = [j for j in journeys if j.name == args.name]
    if not found:
        print(f"tideline: no journey named {args.name} in config/journeys", file=sys.stderr)
        return 2
    if args.every_minutes < 1 or args.end < args.start:
        print("tideline: --to must not be before --from, and --every-minutes at least 1", file=sys.stderr)
        return 2
    staff = staff_config_of(settings, config)
    deliver = EngineDelivery(
        config, Path(settings.raw_dir), sync_limits_of(settings), dry_run=True, staff=staff
    )
    start = dt.datetime.combine(args.start, dt.time())
    end = dt.datetime.combine(args.end + dt.timedelta(days=1), dt.time())
    con = connect_warehouse(settings)
    try:
        result = simulate(
            con,
            found[0],
            start,
            end,
            deliver=deliver,
            catalog=project_catalog(),
            every=dt.timedelta(minutes=args.every_minutes),
            default_timezone=config.policies.default_timezone,
        )
    finally:
        con.close()
    print(json.dumps(result.as_dict(), sort_keys=True) if args.json else "\n".join(result.lines()))
    return 0
