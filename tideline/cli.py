"""`tideline`: generate demo data, run the pipeline through Dagster, print the summary.

tideline demo-data --customers N --days D --seed S --out DIR [--end-date YYYY-MM-DD]
tideline run --raw-dir DIR [--as-of YYYY-MM-DD] [--warehouse FILE] [--home DIR] [--verbose]
tideline demo [--customers N] [--days D] [--seed S] [--verbose]   (what `make run` calls: the demo loop)
tideline summary [--warehouse FILE] [--home DIR]
tideline ui [--warehouse FILE] [--home DIR] [--port 3000]        (what `make ui` calls)
tideline receiver [--landing-dir DIR] [--port 8090]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

from tideline.settings import (
    DEFAULT_HOME,
    DEFAULT_WAREHOUSE_NAME,
    REPO_ROOT,
    Settings,
    validate_as_of,
)

log = logging.getLogger("tideline")
PIPELINE_JOB = "tideline_pipeline"


def _prepare_dagster_home(settings: Settings) -> Path:
    """The Dagster instance folder of these settings (the warehouse's own, or $DAGSTER_HOME when
    set: then every warehouse shares it) with the repo's dagster.yaml. Tideline keeps its own
    instances' dagster.yaml current; a shared instance keeps its own once it has one."""
    dagster_home = settings.instance_dir
    dagster_home.mkdir(parents=True, exist_ok=True)
    source, target = REPO_ROOT / "dagster.yaml", dagster_home / "dagster.yaml"
    stale = not target.exists() or (
        not settings.shares_instance and target.read_bytes() != source.read_bytes()
    )
    if source.exists() and stale:
        shutil.copyfile(source, target)
    return dagster_home


def _today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def run_pipeline(settings: Settings, verbose: bool = False) -> bool:
    """Materialise every asset and run every check through Dagster. True when the run succeeded.

    The run is recorded in the warehouse's own Dagster instance (or the shared $DAGSTER_HOME),
    tagged with its raw dir, warehouse and as-of date, under the job `tideline_pipeline` of the
    code location `make ui` / `tideline ui` serve. The console shows one line per step; dbt's
    detail and every log line go to <state folder>/logs/<run id>.log."""
    if not settings.raw_dir.is_dir():
        raise SystemExit(f"tideline: raw dir {settings.raw_dir} does not exist")
    settings.remember()
    # one as-of date for the whole run (dbt, scoring, report), the day it starts when not given
    settings = replace(settings, as_of=settings.as_of or _today())
    settings.export()
    instance_dir = _prepare_dagster_home(settings)
    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
    if not _warehouse_free(settings):
        return False

    from tideline.dbt_manifest import parse_dbt_project

    parse_dbt_project()
    import dagster as dg

    from orchestration.console import console_run_config, failure_paragraph
    from orchestration.runner import load_definitions, run_job

    load_definitions(settings)
    run_id = str(uuid.uuid4())
    log_path = settings.logs_dir / f"{run_id}.log"
    run_config = {
        "loggers": console_run_config(log_path, verbose),
        "resources": {"run_log": {"config": {"logs_dir": str(settings.logs_dir), "echo": verbose}}},
    }
    print(
        f"Running {PIPELINE_JOB} through Dagster as of {settings.as_of}: {settings.raw_dir} -> "
        f"{settings.warehouse}\n  run {run_id}, log {log_path}",
        flush=True,
    )
    started = time.monotonic()
    with dg.DagsterInstance.from_config(str(instance_dir)) as instance:
        outcome = run_job(instance, PIPELINE_JOB, run_config, run_id=run_id)
    seconds = time.monotonic() - started
    status = "succeeded" if outcome.success else "FAILED"
    print(f"Dagster run {outcome.run_id} {status} in {seconds:.1f}s", flush=True)
    if not outcome.success:
        paragraph = failure_paragraph(outcome.events, log_path, settings.raw_dir, outcome.planned_steps)
        print(paragraph, file=sys.stderr, flush=True)
    return outcome.success


def _warehouse_free(settings: Settings) -> bool:
    """Wait (up to TIDELINE_LOCK_WAIT_SECONDS) while another process holds the warehouse; False
    with one sentence on stderr when it still does."""
    from orchestration.resources import WarehouseLocked, connect_waiting

    try:
        connect_waiting(
            settings.warehouse,
            wait_seconds=settings.lock_wait_seconds,
            on_wait=lambda message: print(f"Waiting: {message} ...", flush=True),
            bi_path=str(settings.bi_path),
        ).close()
    except WarehouseLocked as exc:
        print(f"tideline: {exc}", file=sys.stderr, flush=True)
        return False
    return True


def _print_summary(settings: Settings, read_from: Path | None = None, note: str = "") -> None:
    from tideline.reporting.summary import build_summary

    summary = build_summary(
        settings.warehouse,
        home=settings.state_dir,
        bi_path=settings.bi_path,
        ui_command=_ui_command(settings),
        read_from=read_from,
    )
    print()
    if note:
        print(note)
    print(summary)


def _ui_command(settings: Settings) -> str:
    """How to open the Dagster UI on this warehouse's runs."""
    if settings.shares_instance:
        return f"DAGSTER_HOME={settings.instance_dir} tideline ui --warehouse {settings.warehouse}"
    if settings.state_dir == DEFAULT_HOME:
        return "make ui"
    if settings.state_dir == settings.home:  # the default warehouse of another home
        return f"tideline ui --home {settings.home}"
    home = f" --home {settings.home}" if settings.home != DEFAULT_HOME else ""
    return f"tideline ui --warehouse {settings.warehouse}{home}"


def cmd_demo_data(args: argparse.Namespace) -> int:
    from tideline.demo.data import generate_demo_data

    end = dt.date.fromisoformat(args.end_date) if args.end_date else None
    summary = generate_demo_data(
        Path(args.out), customers=args.customers, days=args.days, seed=args.seed, end_date=end
    )
    print(
        f"demo data: {summary.customers:,} customers, {summary.orders:,} orders, {summary.events:,} events "
        f"from {summary.start_date} to {summary.end_date} in {summary.out_dir} (ground truth in {summary.truth_dir})"
    )
    return 0


def _settings(args: argparse.Namespace) -> Settings:
    """Settings from the environment, overridden by --home, --warehouse, --raw-dir and --as-of."""
    base = Settings.from_env()
    home = Path(args.home).resolve() if getattr(args, "home", None) else base.home
    if getattr(args, "warehouse", None):
        warehouse = Path(args.warehouse).resolve()
    elif getattr(args, "home", None):
        warehouse = home / DEFAULT_WAREHOUSE_NAME
    else:
        warehouse = base.warehouse
    settings = replace(base, home=home, warehouse=warehouse)
    if getattr(args, "raw_dir", None):
        settings = replace(settings, raw_dir=Path(args.raw_dir).resolve())
    if getattr(args, "as_of", None) is not None:
        settings = replace(settings, as_of=validate_as_of(args.as_of))
    return settings


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    ok = _run_with_destinations(settings, args.local_destinations, args.verbose)
    if ok:
        _print_summary(settings)
    return 0 if ok else 1


def _run_with_destinations(settings: Settings, local: bool | None, verbose: bool = False) -> bool:
    """Run the pipeline; with the default activation config, start the local destinations it points
    at (their outbox is the warehouse's own, <state folder>/outbox)."""
    if local is None:
        local = not os.environ.get("TIDELINE_ACTIVATION_CONFIG")
    if not local:
        return run_pipeline(settings, verbose)
    from tideline.demo.local import local_destinations

    with local_destinations(settings.state_dir) as where:
        print(
            f"Local destinations: SMTP {where['smtp']}, HTTP {where['http']}, files in {where['outbox']}",
            flush=True,
        )
        return run_pipeline(settings, verbose)


# what the demo loop itself writes into its landing zone (receiver, shop): kept when the
# generated data is replaced for a new day, as the ledger in the warehouse is
LIVE_FILES = ("engagement", "events/shop", "commerce/orders/shop", "crm/consents/receiver-*.jsonl")


def _generate_demo(raw: Path, params: dict, end_date: dt.date) -> dict:
    """(Re)generate the demo landing zone, carrying the demo loop's own files over."""
    from tideline.demo.data import generate_demo_data

    stash = raw.parent / "live-carry"
    if stash.exists():
        shutil.rmtree(stash)
    if raw.exists():
        for pattern in LIVE_FILES:
            for path in raw.glob(pattern):
                target = stash / path.relative_to(raw)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(path, target)
        shutil.rmtree(raw)
    started = time.monotonic()
    summary = generate_demo_data(
        raw, customers=params["customers"], days=params["days"], seed=params["seed"], end_date=end_date
    )
    print(
        f"Generated demo data: {summary.customers:,} customers, {summary.orders:,} orders, "
        f"{summary.events:,} events up to {summary.end_date} in {time.monotonic() - started:.1f}s",
        flush=True,
    )
    if stash.exists():
        for path in sorted(p for p in stash.rglob("*") if p.is_file()):
            target = raw / path.relative_to(stash)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(path, target)
        shutil.rmtree(stash)
    return json.loads((raw / "_truth" / "demo.json").read_text())


def cmd_demo(args: argparse.Namespace) -> int:
    """The demo loop: demo data up to yesterday (UTC), then as of today: run the pipeline (it sends),
    let the simulated audience open, click, unsubscribe and buy through the receiver and the demo
    shop, run the pipeline again (it loads what came back) and print the summary."""
    from tideline.demo.audience import run_audience
    from tideline.demo.local import demo_secrets, environment, running_receiver
    from tideline.demo.shop import DemoShop

    base = Settings.from_env()
    raw = base.home / "demo" / "raw"
    today = dt.datetime.now(dt.UTC).date()
    end_date = today - dt.timedelta(days=1)
    params = {"customers": args.customers, "days": args.days, "seed": args.seed}
    marker = raw / "_truth" / "demo.json"
    existing = json.loads(marker.read_text()) if marker.exists() else {}
    if any(existing.get(k) != v for k, v in {**params, "end_date": end_date.isoformat()}.items()):
        existing = _generate_demo(raw, params, end_date)
    else:
        print(f"Reusing demo data in {raw}", flush=True)
    if existing.get("as_of") != today.isoformat():  # `tideline summary` and the UI use the same day
        existing["as_of"] = today.isoformat()
        marker.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")
    settings = replace(base, raw_dir=raw, as_of=today.isoformat())

    secrets = demo_secrets(base.home)
    # The simulated audience reads its messages at once, at whatever hour `make run` is run, so
    # the demo sends around the clock (unless TIDELINE_QUIET_HOURS_* are set): otherwise quiet
    # hours would defer up to half the experiment's emails to a run that never comes.
    quiet = {k: os.environ.get(k) or "0" for k in ("TIDELINE_QUIET_HOURS_START", "TIDELINE_QUIET_HOURS_END")}
    with (
        environment({**secrets, **quiet}),
        running_receiver(raw) as receiver_url,
        DemoShop(raw) as shop,
        environment({"TIDELINE_RECEIVER_URL": receiver_url}),
    ):
        print(
            f"Engagement receiver on {receiver_url}, demo shop on {shop.base_url} (both append to {raw})",
            flush=True,
        )
        if quiet["TIDELINE_QUIET_HOURS_START"] == quiet["TIDELINE_QUIET_HOURS_END"]:
            print("Quiet hours are off for the demo (config/activation.yml: TIDELINE_QUIET_HOURS_*)")
        ok = _run_with_destinations(settings, True, args.verbose)
        if ok:
            started = time.monotonic()
            result = run_audience(
                settings.state_dir,
                shop_url=shop.base_url,
                receiver_url=receiver_url,
                webhook_secret=secrets["TIDELINE_RECEIVER_WEBHOOK_SECRET"],
                warehouse=settings.warehouse,
                seed=args.seed,
            )
            print(f"Simulated audience in {time.monotonic() - started:.1f}s: {result.describe()}", flush=True)
            print("Running the pipeline again to load what came back ...", flush=True)
            ok = _run_with_destinations(settings, True, args.verbose)
    if ok:
        print(f"Engagement receiver and demo shop ran on {receiver_url} and {shop.base_url} (now stopped)")
        _print_summary(settings)
    return 0 if ok else 1


def cmd_summary(args: argparse.Namespace) -> int:
    """The summary of the warehouse's last run. While a run holds the warehouse, the summary of the
    BI copy (the last complete run) instead."""
    import duckdb

    from orchestration.resources import lock_holder

    settings = _settings(args)
    if not settings.warehouse.exists():
        print(f"tideline: no warehouse at {settings.warehouse}: run `tideline run` first", file=sys.stderr)
        return 1
    try:
        _print_summary(settings)
    except duckdb.IOException as exc:
        holder = lock_holder(exc)
        if holder is None or not settings.bi_path.exists():
            raise
        note = (
            f"(the warehouse is in use by PID {holder[0]}: this is the summary of the BI copy, "
            f"the last complete run)"
        )
        _print_summary(settings, read_from=settings.bi_path, note=note)
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    """The Dagster UI (webserver and daemon) on this warehouse's instance: its runs, assets,
    schedules; runs launched from it use the warehouse's last CLI raw dir and as-of date."""
    settings = _settings(args)
    if not args.raw_dir and not os.environ.get("TIDELINE_RAW_DIR"):
        settings = settings.remembered()
    instance_dir = _prepare_dagster_home(settings)
    from tideline.dbt_manifest import parse_dbt_project

    parse_dbt_project()
    env = {
        **os.environ,
        "TIDELINE_HOME": str(settings.home),
        "TIDELINE_WAREHOUSE": str(settings.warehouse),
        "TIDELINE_RAW_DIR": str(settings.raw_dir),
        "TIDELINE_AS_OF": settings.as_of,
        "DAGSTER_HOME": str(instance_dir),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    command = [
        str(Path(sys.executable).with_name("dagster")),
        "dev",
        "-m",
        "orchestration.definitions",
        "-h",
        args.host,
        "-p",
        str(args.port),
    ]
    print(
        f"Dagster UI on http://{args.host}:{args.port} for {settings.warehouse} "
        f"(runs in {instance_dir}; raw dir {settings.raw_dir})",
        flush=True,
    )
    try:
        return subprocess.call(command, env=env, cwd=REPO_ROOT)
    except KeyboardInterrupt:  # Ctrl-C stops `dagster dev` too (same process group)
        return 130


def cmd_receiver(args: argparse.Namespace) -> int:
    from activation.receiver import serve

    landing = Path(args.landing_dir).resolve() if args.landing_dir else Settings.from_env().raw_dir
    print(f"engagement receiver on http://{args.host}:{args.port}, writing under {landing}", flush=True)
    serve(landing, host=args.host, port=args.port)
    return 0


VERBOSE_HELP = "print every Dagster event and dbt's output instead of one line per step"


def build_parser() -> argparse.ArgumentParser:
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
    p.add_argument("--warehouse", default=None, help="DuckDB file (default: $TIDELINE_HOME/warehouse.duckdb)")
    p.add_argument(
        "--home", default=None, help="folder for generated state (default: $TIDELINE_HOME or .tideline)"
    )
    p.add_argument(
        "--local-destinations",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="start the local SMTP/HTTP/file destinations the default activation config points at "
        "(default: on unless TIDELINE_ACTIVATION_CONFIG is set)",
    )
    p.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="generate demo data if needed and run the whole pipeline on it")
    p.add_argument("--customers", type=int, default=int(os.environ.get("CUSTOMERS", 2000)))
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
    return parser


def main(argv: list[str] | None = None) -> int:
    level = os.environ.get("TIDELINE_LOG_LEVEL", "WARNING").upper()
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # libraries' own loggers (dagster) propagate here too
        handler.setLevel(level)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:
        print(f"tideline: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
