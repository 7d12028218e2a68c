"""`tideline pilot release|cancel NAME --by PERSON` and `tideline approve NAME --by PERSON`.

NAME is an activation's sync key (win_back_dormant__email, or a journey step's
journey__cart_abandonment__reminder__email), a segment (each of its message activations), a
campaign, or a journey (each of its send steps that declares a pilot or an approval limit). The decision is recorded for the activation's current content version
(from the dbt project's manifest) in tideline_sync.launch_decisions, and the sync's next run acts
on it (docs/launches.md). Waits for the warehouse while a run holds it (TIDELINE_LOCK_WAIT_SECONDS).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping

from tideline.commands.run import connect_warehouse, settings_from
from tideline.settings import Settings


def add_parser(sub: argparse._SubParsersAction, home_help: str, warehouse_help: str) -> None:
    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("name", help="an activation (segment__destination), a segment or a campaign")
        q.add_argument("--by", required=True, help="the person deciding (recorded with the decision)")
        q.add_argument("--warehouse", default=None, help=warehouse_help)
        q.add_argument("--home", default=None, help=home_help)

    p = sub.add_parser("pilot", help="release or cancel the rest of a launch whose pilot gate failed")
    verbs = p.add_subparsers(dest="verb", required=True)
    for verb, decision, text in (
        ("release", "released", "send the held rest of the audience on the next run"),
        ("cancel", "cancelled", "never send the held rest (this content version)"),
    ):
        q = verbs.add_parser(verb, help=text)
        common(q)
        q.set_defaults(func=cmd_pilot, decision=decision)
    p = sub.add_parser("approve", help="approve an activation's content version to send beyond its pilot")
    common(p)
    p.set_defaults(func=cmd_approve)


def _bindings(name: str, settings: Settings, env: Mapping[str, str]):  # noqa: ANN202 - list[SyncBinding]
    """The activations `name` means, among the segments' and the journeys' send steps with a launch.
    A journey folder that does not load keeps only its own launches out (the error is printed)."""
    from activation.config import bindings_from_manifest
    from activation.destinations.base import ConfigError
    from activation.journeys.deliver import launch_bindings
    from activation.journeys.spec import JourneyError
    from activation.journeys.store import SCHEMA
    from activation.launches.actions import resolve
    from tideline.commands.journey import load_journeys_of
    from tideline.dbt_manifest import parse_dbt_project

    bindings = bindings_from_manifest(parse_dbt_project())
    try:
        bindings += launch_bindings(load_journeys_of(settings, env), SCHEMA)
    except (JourneyError, ConfigError) as exc:
        print(f"tideline: journeys not read ({exc})", file=sys.stderr)
    return resolve(bindings, name)


def _each(args: argparse.Namespace, env: Mapping[str, str], decide) -> int:  # noqa: ANN001
    from activation.launches.actions import LaunchError

    settings = settings_from(args, env)
    try:
        bindings = _bindings(args.name, settings, env)
    except LaunchError as exc:
        print(f"tideline: {exc}", file=sys.stderr)
        return 2
    failed = 0
    con = connect_warehouse(settings)
    try:
        for binding in bindings:
            try:
                print(decide(con, binding, args.by))
            except LaunchError as exc:
                print(f"tideline: {exc}", file=sys.stderr)
                failed += 1
    finally:
        con.close()
    return 2 if failed == len(bindings) else 0


def cmd_pilot(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from activation.launches.actions import decide_pilot

    return _each(args, env, lambda con, b, by: decide_pilot(con, b, args.decision, by))


def cmd_approve(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from activation.launches.actions import approve

    return _each(args, env, approve)
