"""`tideline audience build|preview`: regenerate the audience models, or preview one audience file.

    tideline audience build
    tideline audience preview dbt_project/audiences/cart_rescue.yml [--json] [--as-of YYYY-MM-DD]
        [--warehouse FILE] [--home DIR] [--sample N]

build writes dbt_project/models/marts/audiences/ from dbt_project/audiences/*.yml (checked in;
`tideline run` and `make manifest` regenerate them too). preview reads the warehouse read-only;
while a run holds it, it reads the BI copy (the last complete run) and says so. A file that does
not check or compile prints the error (file and path in it) and exits with 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Mapping
from pathlib import Path

from tideline.commands.run import settings_from
from tideline.settings import DBT_PROJECT_DIR


def add_parser(sub: argparse._SubParsersAction, home_help: str, warehouse_help: str) -> None:
    p = sub.add_parser("audience", help="build the audience models, or preview an audience file")
    verbs = p.add_subparsers(dest="verb", required=True)
    build = verbs.add_parser("build", help="write models/marts/audiences/ from dbt_project/audiences/")
    build.set_defaults(func=cmd_audience_build)
    show = verbs.add_parser("preview", help="size, reachable size per channel, overlap and sample ids")
    show.add_argument("file", type=Path, help="an audience file, e.g. dbt_project/audiences/cart_rescue.yml")
    show.add_argument("--json", action="store_true", help="one JSON object (its `size` is the audience size)")
    show.add_argument("--as-of", type=dt.date.fromisoformat, default=None, help="default: the warehouse's")
    show.add_argument("--sample", type=int, default=10, help="how many customer ids to show")
    show.add_argument("--warehouse", default=None, help=warehouse_help)
    show.add_argument("--home", default=None, help=home_help)
    show.set_defaults(func=cmd_audience_preview)


def cmd_audience_build(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from activation.audiences import build_all
    from activation.conditions import ConditionError

    try:
        for path in build_all(DBT_PROJECT_DIR):
            print(path)
    except ConditionError as exc:
        print(f"tideline: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_audience_preview(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    import duckdb

    from activation.audiences import format_preview, preview
    from activation.conditions import ConditionError
    from tideline.warehouse import lock_holder

    settings = settings_from(args, env)
    path, note = settings.warehouse, ""
    if not path.is_file():
        print(
            f"tideline: no warehouse at {path}: run `tideline run` first or pass --warehouse", file=sys.stderr
        )
        return 1
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.IOException as exc:
        holder = lock_holder(exc)
        if holder is None or not settings.bi_path.exists():
            raise
        path, note = settings.bi_path, f"(the warehouse is in use by PID {holder[0]}: read from the BI copy)"
        con = duckdb.connect(str(path), read_only=True)
    try:
        result = preview(
            con, args.file, project_dir=DBT_PROJECT_DIR, as_of=args.as_of, sample_size=args.sample
        )
    except ConditionError as exc:
        print(f"tideline: {exc}", file=sys.stderr)
        return 2
    except duckdb.CatalogException as exc:
        print(
            f"tideline: {path} lacks a relation the preview reads ({exc}): run the pipeline on it first",
            file=sys.stderr,
        )
        return 1
    finally:
        con.close()
    print(json.dumps(result, sort_keys=True) if args.json else format_preview(result))
    if note and not args.json:
        print(note)
    return 0
