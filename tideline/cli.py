"""`tideline`: generate demo data, run the pipeline through Dagster, print the summary.

tideline demo-data --customers N --days D --seed S --out DIR [--end-date YYYY-MM-DD]
tideline run --raw-dir DIR [--target duckdb|postgres] [--as-of YYYY-MM-DD] [--warehouse FILE] [--home DIR] [--[no-]local-destinations] [--verbose] [--by NAME] [--full-refresh] [--retrain]
tideline demo [--customers N] [--days D] [--seed S] [--verbose]   (what `make run` calls: the demo loop)
tideline summary [--warehouse FILE] [--home DIR]
tideline ui [--warehouse FILE] [--home DIR] [--raw-dir DIR] [--[no-]local-destinations] [--port 3000]
                                                                 (what `make ui` calls)
tideline receiver [--landing-dir DIR] [--port 8090]
tideline audience build                                          (regenerate models/marts/audiences/)
tideline audience preview FILE [--json] [--as-of YYYY-MM-DD] [--warehouse FILE] [--home DIR]
tideline tags build|check                                        (the tag models from dbt_project/tags.yml)
tideline leads build|check                                       (the lead scoring models from dbt_project/lead_scoring.yml)
tideline journey check|list|tick|simulate                        (journeys: docs/journeys.md)
tideline send-test ACTIVATION --to LIST [--customers N] [--synthetic]   (test send to internal accounts)
tideline customer export|erase --customer-id ID | --email EMAIL   (GDPR requests: docs/privacy.md)
tideline pilot release|cancel NAME --by PERSON                   (a launch whose pilot gate failed)
tideline approve NAME --by PERSON                                (a launch above the approval limit)
tideline staff notify [--at ISO] [--as-of YYYY-MM-DD]            (staff notifications now: docs/leads.md)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from tideline.commands import audience, customer, journey, launch, leads, send_test, staff, tags
from tideline.commands.demo import cmd_demo, cmd_demo_data
from tideline.commands.receiver import cmd_receiver
from tideline.commands.run import cmd_run, cmd_summary
from tideline.commands.ui import cmd_ui
from tideline.settings import TARGETS

__all__ = ["build_parser", "main"]

VERBOSE_HELP = "print every Dagster event and dbt's output instead of one line per step"
LOCAL_HELP = (
    "start the local SMTP/HTTP/file destinations the default activation config points at "
    "(default: on unless TIDELINE_ACTIVATION_CONFIG is set)"
)


def build_parser(default_customers: int = 2000) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tideline", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo-data", help="write a deterministic demo landing zone")
    p.add_argument("--customers", type=int, default=2000)
    p.add_argument("--days", type=int, default=730)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--end-date", default=None, help="last day of data (default: a fixed date, see demo_data)")
    p.add_argument(
        "--out", required=True, help="landing zone folder to write (ground truth goes to OUT/_truth)"
    )
    p.set_defaults(func=cmd_demo_data)

    p = sub.add_parser("run", help="run the pipeline through Dagster on a landing zone")
    p.add_argument("--raw-dir", required=True, help="landing zone folder (see README: bring your own data)")
    p.add_argument("--as-of", default=None, help="as-of date YYYY-MM-DD (default: $TIDELINE_AS_OF or today)")
    p.add_argument(
        "--target",
        choices=TARGETS,
        default=None,
        help="the warehouse engine (default: $TIDELINE_TARGET or duckdb); postgres reads TIDELINE_PG_HOST, "
        "_PORT, _USER, _DATABASE, _PASSWORD and runs the landing load and dbt there (docs/scaling.md)",
    )
    p.add_argument("--warehouse", default=None, help="DuckDB file (default: $TIDELINE_HOME/warehouse.duckdb)")
    p.add_argument(
        "--home", default=None, help="folder for generated state (default: $TIDELINE_HOME or .tideline)"
    )
    p.add_argument(
        "--local-destinations", action=argparse.BooleanOptionalAction, default=None, help=LOCAL_HELP
    )
    p.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    p.add_argument(
        "--by", default=None, help="who launches the run, kept with its syncs (default: the OS user)"
    )
    p.add_argument(
        "--full-refresh",
        action="store_true",
        help="read every landing file again and rebuild the incremental dbt models whole "
        "(default: only new and changed files and new lines; only the rows that changed)",
    )
    p.add_argument(
        "--retrain",
        action="store_true",
        help="train every model now (default: reuse a model while it is fresh, see docs/scaling.md)",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="generate demo data if needed and run the whole pipeline on it")
    p.add_argument("--customers", type=int, default=default_customers)
    p.add_argument("--days", type=int, default=730)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("ui", help="open the Dagster UI on a warehouse's runs (what `make ui` calls)")
    p.add_argument("--warehouse", default=None, help="DuckDB file (default: $TIDELINE_WAREHOUSE)")
    p.add_argument("--home", default=None, help="folder for generated state (default: $TIDELINE_HOME)")
    p.add_argument(
        "--raw-dir", default=None, help="landing zone of the UI's runs (default: the warehouse's last run's)"
    )
    p.add_argument(
        "--local-destinations", action=argparse.BooleanOptionalAction, default=None, help=LOCAL_HELP
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.set_defaults(func=cmd_ui)

    p = sub.add_parser(
        "receiver", help="serve the engagement receiver (clicks, opens, unsubscribes, provider webhooks)"
    )
    p.add_argument(
        "--landing-dir", default=None, help="landing zone to append to (default: $TIDELINE_RAW_DIR)"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090)
    p.set_defaults(func=cmd_receiver)

    p = sub.add_parser("summary", help="print the summary of the last run")
    p.add_argument("--warehouse", default=None, help="DuckDB file (default: $TIDELINE_WAREHOUSE)")
    p.add_argument("--home", default=None, help="folder for generated state (default: $TIDELINE_HOME)")
    p.set_defaults(func=cmd_summary)

    audience.add_parser(
        sub,
        home_help="folder for generated state (default: $TIDELINE_HOME)",
        warehouse_help="DuckDB file (default: $TIDELINE_WAREHOUSE)",
    )
    tags.add_parser(sub)
    leads.add_parser(sub)
    journey.add_parser(
        sub,
        home_help="folder for generated state (default: $TIDELINE_HOME)",
        warehouse_help="DuckDB file (default: $TIDELINE_WAREHOUSE)",
    )
    send_test.add_parser(
        sub,
        home_help="folder for generated state (default: $TIDELINE_HOME)",
        warehouse_help="DuckDB file (default: $TIDELINE_WAREHOUSE)",
    )
    customer.add_parser(
        sub,
        home_help="folder for generated state (default: $TIDELINE_HOME)",
        warehouse_help="DuckDB file (default: $TIDELINE_WAREHOUSE)",
    )
    launch.add_parser(
        sub,
        home_help="folder for generated state (default: $TIDELINE_HOME)",
        warehouse_help="DuckDB file (default: $TIDELINE_WAREHOUSE)",
    )
    staff.add_parser(
        sub,
        home_help="folder for generated state (default: $TIDELINE_HOME)",
        warehouse_help="DuckDB file (default: $TIDELINE_WAREHOUSE)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """The entry point, and the only code that reads the process's environment (besides the Dagster
    code location's entry point, orchestration/definitions.py): commands get it as a mapping."""
    env = dict(os.environ)
    level = env.get("TIDELINE_LOG_LEVEL", "WARNING").upper()
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # libraries' own loggers (dagster) propagate here too
        handler.setLevel(level)
    args = build_parser(default_customers=int(env.get("CUSTOMERS", 2000))).parse_args(argv)
    try:
        return int(args.func(args, env) or 0)
    except ValueError as exc:
        print(f"tideline: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
