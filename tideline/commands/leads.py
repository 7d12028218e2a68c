"""`tideline leads build|check`: regenerate the lead scoring models from dbt_project/lead_scoring.yml.

    tideline leads build     # write the generated models of models/marts/leads/ (checked in)
    tideline leads check     # exit 1, naming the files, when a generated model is stale

`tideline run` and `tideline ui` regenerate them too (tideline/dbt_manifest.generate_models). A
rules file that does not check prints the error (file and path in it) and exits with 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "leads", help="build the lead scoring models from dbt_project/lead_scoring.yml, or check them"
    )
    verbs = p.add_subparsers(dest="verb", required=True)
    verbs.add_parser("build", help="write the generated lead scoring models").set_defaults(
        func=cmd_leads_build
    )
    verbs.add_parser("check", help="exit 1 when a generated lead scoring model is stale").set_defaults(
        func=cmd_leads_check
    )


def cmd_leads_build(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from activation import leads
    from activation.conditions import ConditionError

    try:
        changed = leads.build()
    except ConditionError as exc:
        print(f"tideline: {exc}", file=sys.stderr)
        return 2
    print(f"{len(changed)} generated lead scoring model(s) updated" + "".join(f"\n  {p}" for p in changed))
    return 0


def cmd_leads_check(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from activation import leads
    from activation.conditions import ConditionError
    from activation.tags import display_name

    try:
        outdated = leads.stale()
    except ConditionError as exc:
        print(f"tideline: {exc}", file=sys.stderr)
        return 2
    if outdated:
        names = ", ".join(display_name(p) for p in outdated)
        print(
            f"tideline: stale generated lead scoring models: {names}; run `{leads.BUILD_COMMAND}`",
            file=sys.stderr,
        )
        return 1
    print("generated lead scoring models are current")
    return 0
