"""`tideline tags build|check`: regenerate the tag models from the rules file, or check they are current.

    tideline tags build     # write the customer_tags models from dbt_project/tags.yml (checked in)
    tideline tags check     # exit 1, naming the files, when a generated model is stale

`tideline run` and `tideline ui` regenerate them too (tideline/dbt_manifest.generate_models). A rule
that does not check prints the error (file and path in it) and exits with 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tags", help="build the tag models from dbt_project/tags.yml, or check them")
    verbs = p.add_subparsers(dest="verb", required=True)
    verbs.add_parser("build", help="write the customer_tags models from the rules").set_defaults(
        func=cmd_tags_build
    )
    verbs.add_parser("check", help="exit 1 when a generated tag model is stale").set_defaults(
        func=cmd_tags_check
    )


def cmd_tags_build(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from activation import tags

    changed = tags.build()
    print(f"{len(changed)} generated tag model(s) updated" + "".join(f"\n  {p}" for p in changed))
    return 0


def cmd_tags_check(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from activation import tags

    outdated = tags.stale()
    if outdated:
        names = ", ".join(tags.display_name(p, tags.PROJECT_DIR.parent) for p in outdated)
        print(f"tideline: stale generated tag models: {names}; run `{tags.BUILD_COMMAND}`", file=sys.stderr)
        return 1
    print("generated tag models are current")
    return 0
