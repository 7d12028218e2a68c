"""`tideline`: generate demo data, run the pipeline through Dagster, print the summary.

tideline demo-data --customers N --days D --seed S --out DIR [--end-date YYYY-MM-DD]
tideline run --raw-dir DIR [--as-of YYYY-MM-DD] [--warehouse FILE] [--home DIR]
tideline demo [--customers N] [--days D] [--seed S]      (what `make run` calls: the demo loop)
tideline summary [--warehouse FILE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

from orchestration.settings import REPO_ROOT, Settings, validate_as_of

log = logging.getLogger("tideline")


def _prepare_dagster_home(home: Path) -> Path:
    """DAGSTER_HOME ($DAGSTER_HOME, else under the Tideline home) with the repo's dagster.yaml
    unless that instance already has its own."""
    dagster_home = Path(os.environ.get("DAGSTER_HOME") or home / "dagster")
    dagster_home.mkdir(parents=True, exist_ok=True)
    source, target = REPO_ROOT / "dagster.yaml", dagster_home / "dagster.yaml"
    if source.exists() and not target.exists():
        shutil.copyfile(source, target)
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    return dagster_home


def run_pipeline(settings: Settings) -> bool:
    """Materialise every asset and run every check through Dagster. True when the run succeeded."""
    if not settings.raw_dir.is_dir():
        raise SystemExit(f"tideline: raw dir {settings.raw_dir} does not exist")
    settings.export()
    _prepare_dagster_home(settings.home)
    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)

    from orchestration.manifest import parse_dbt_project

    parse_dbt_project()
    import dagster as dg

    from orchestration.definitions import build_definitions

    defs = build_definitions(settings)
    job = defs.resolve_job_def("tideline_pipeline")
    started = time.monotonic()
    with dg.DagsterInstance.get() as instance:
        print(
            f"Running the pipeline through Dagster (landing zone -> dbt build -> checks), as of "
            f"{settings.as_of or 'today'} ...",
            flush=True,
        )
        level = os.environ.get("TIDELINE_LOG_LEVEL", "WARNING").upper()
        run_config = {"loggers": {"console": {"config": {"log_level": level}}}}
        result = job.execute_in_process(instance=instance, raise_on_error=False, run_config=run_config)
    seconds = time.monotonic() - started
    status = "succeeded" if result.success else "FAILED"
    print(f"Dagster run {result.run_id} {status} in {seconds:.1f}s", flush=True)
    if not result.success:
        for event in result.all_events:
            if event.is_failure:
                print(f"  failed: {event.step_key}: {event.message}", file=sys.stderr)
    return result.success


def _print_summary(warehouse: Path, home: Path | None = None) -> None:
    from orchestration.summary import build_summary

    print()
    print(build_summary(warehouse, home=home))


def cmd_demo_data(args: argparse.Namespace) -> int:
    from orchestration.demo_data import generate_demo_data

    end = dt.date.fromisoformat(args.end_date) if args.end_date else None
    summary = generate_demo_data(
        Path(args.out), customers=args.customers, days=args.days, seed=args.seed, end_date=end
    )
    print(
        f"demo data: {summary.customers:,} customers, {summary.orders:,} orders, {summary.events:,} events "
        f"from {summary.start_date} to {summary.end_date} in {summary.out_dir} (ground truth in {summary.truth_dir})"
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    base = Settings.from_env()
    home = Path(args.home).resolve() if args.home else base.home
    settings = Settings(
        home=home,
        warehouse=Path(args.warehouse).resolve() if args.warehouse else home / "warehouse.duckdb",
        raw_dir=Path(args.raw_dir).resolve(),
        as_of=validate_as_of(args.as_of) if args.as_of is not None else base.as_of,
    )
    ok = _run_with_destinations(settings, args.local_destinations)
    if ok:
        _print_summary(settings.warehouse, settings.home)
    return 0 if ok else 1


def _run_with_destinations(settings: Settings, local: bool | None) -> bool:
    """Run the pipeline; with the default activation config, start the local destinations it points at."""
    if local is None:
        local = not os.environ.get("TIDELINE_ACTIVATION_CONFIG")
    if not local:
        return run_pipeline(settings)
    from orchestration.local_destinations import local_destinations

    with local_destinations(settings.home) as where:
        print(
            f"Local destinations: SMTP {where['smtp']}, HTTP {where['http']}, files in {where['outbox']}",
            flush=True,
        )
        return run_pipeline(settings)


# what the demo loop itself writes into its landing zone (receiver, shop): kept when the
# generated data is replaced for a new day, as the ledger in the warehouse is
LIVE_FILES = ("engagement", "events/shop", "commerce/orders/shop", "crm/consents/receiver-*.jsonl")


def _generate_demo(raw: Path, params: dict, end_date: dt.date) -> dict:
    """(Re)generate the demo landing zone, carrying the demo loop's own files over."""
    from orchestration.demo_data import generate_demo_data

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
    from orchestration.demo_audience import run_audience
    from orchestration.demo_shop import DemoShop
    from orchestration.local_destinations import demo_secrets, environment, running_receiver

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
        ok = _run_with_destinations(settings, True)
        if ok:
            started = time.monotonic()
            result = run_audience(
                base.home,
                shop_url=shop.base_url,
                receiver_url=receiver_url,
                webhook_secret=secrets["TIDELINE_RECEIVER_WEBHOOK_SECRET"],
                warehouse=settings.warehouse,
                seed=args.seed,
            )
            print(f"Simulated audience in {time.monotonic() - started:.1f}s: {result.describe()}", flush=True)
            print("Running the pipeline again to load what came back ...", flush=True)
            ok = _run_with_destinations(settings, True)
    if ok:
        _print_summary(settings.warehouse, settings.home)
        print(f"Engagement receiver and demo shop ran on {receiver_url} and {shop.base_url} (now stopped)")
    return 0 if ok else 1


def cmd_summary(args: argparse.Namespace) -> int:
    warehouse = Path(args.warehouse).resolve() if args.warehouse else Settings.from_env().warehouse
    _print_summary(warehouse)
    return 0


def cmd_receiver(args: argparse.Namespace) -> int:
    from activation.receiver import serve

    landing = Path(args.landing_dir).resolve() if args.landing_dir else Settings.from_env().raw_dir
    print(f"engagement receiver on http://{args.host}:{args.port}, writing under {landing}", flush=True)
    serve(landing, host=args.host, port=args.port)
    return 0


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
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="generate demo data if needed and run the whole pipeline on it")
    p.add_argument("--customers", type=int, default=int(os.environ.get("CUSTOMERS", 2000)))
    p.add_argument("--days", type=int, default=730)
    p.add_argument("--seed", type=int, default=42)
    p.set_defaults(func=cmd_demo)

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
    p.add_argument("--warehouse", default=None)
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
