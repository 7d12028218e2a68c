"""`python -m activation.audiences build|preview`: regenerate the audience models, or preview one file.

    python -m activation.audiences build [--project-dir dbt_project]
    python -m activation.audiences preview dbt_project/audiences/cart_rescue.yml [--json]
        [--warehouse PATH] [--as-of YYYY-MM-DD]

A file that does not check or compile prints the error (file and path in it) and exits with 2.
The preview opens the warehouse read-only: default TIDELINE_WAREHOUSE, else
$TIDELINE_HOME/warehouse.duckdb (TIDELINE_HOME defaults to .tideline).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

import duckdb

from activation.conditions import ConditionError

from .generate import build_all
from .preview import DEFAULT_PROJECT, format_preview, preview


def default_warehouse() -> Path:
    explicit = os.environ.get("TIDELINE_WAREHOUSE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("TIDELINE_HOME") or ".tideline") / "warehouse.duckdb"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m activation.audiences", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="write models/marts/audiences/ from dbt_project/audiences/")
    build.add_argument("--project-dir", type=Path, default=DEFAULT_PROJECT)
    show = sub.add_parser("preview", help="size, reachable size, overlap and sample of one audience file")
    show.add_argument("file", type=Path)
    show.add_argument("--json", action="store_true", help="one JSON object (its `size` is the audience size)")
    show.add_argument("--warehouse", type=Path, default=None)
    show.add_argument("--as-of", type=dt.date.fromisoformat, default=None)
    show.add_argument("--project-dir", type=Path, default=DEFAULT_PROJECT)
    show.add_argument("--sample", type=int, default=10)
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            for path in build_all(args.project_dir):
                print(path)
            return 0
        warehouse = args.warehouse or default_warehouse()
        if not warehouse.is_file():
            print(
                f"{warehouse}: no warehouse there: run the pipeline first or pass --warehouse",
                file=sys.stderr,
            )
            return 1
        con = duckdb.connect(str(warehouse), read_only=True)
        try:
            result = preview(
                con, args.file, project_dir=args.project_dir, as_of=args.as_of, sample_size=args.sample
            )
        finally:
            con.close()
    except ConditionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except duckdb.CatalogException as exc:
        print(f"error: {warehouse}: the warehouse lacks a relation the preview reads ({exc});"
              " run the pipeline on it first", file=sys.stderr)  # fmt: skip
        return 1
    print(json.dumps(result, sort_keys=True) if args.json else format_preview(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
