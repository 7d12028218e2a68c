"""`tideline demo` (what `make run` calls: the demo loop) and `tideline demo-data`; also the local
destinations `tideline run` and `tideline ui` start with the default activation config.

The one module of the CLI that imports the demo world (tideline.demo): product code never does
(tests/unit/test_layout.py). The demo's as-of date is today, passed explicitly to its runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from tideline.commands.journey import tick_journeys
from tideline.commands.run import print_summary, run_pipeline
from tideline.settings import Settings


@contextmanager
def with_local_destinations(
    settings: Settings, env: Mapping[str, str]
) -> Iterator[tuple[Settings, dict[str, str]]]:
    """The local SMTP/HTTP/file destinations the default activation config points at, for the
    block (their outbox is the warehouse's own, <state folder>/outbox): the settings of a run that
    uses them (sandbox secrets from the state folder) and the config's `${VAR}` values for them."""
    from tideline.demo.local import local_destinations

    with local_destinations(settings.state_dir, env) as local:
        print(
            f"Local destinations: SMTP {local.smtp}, HTTP {local.http}, files in {local.outbox}",
            flush=True,
        )
        yield replace(settings, local_destinations=True), local.values


def cmd_demo_data(args: argparse.Namespace, env: Mapping[str, str]) -> int:
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


def cmd_demo(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """The demo loop: demo data up to yesterday (UTC), then as of today: run the pipeline (it sends),
    let the simulated audience open, click, unsubscribe and buy through the receiver and the demo
    shop, run the pipeline again (it loads what came back) and print the summary."""
    from tideline.demo.loop import DemoParams, demo_loop, prepare_demo_data

    def say(line: str) -> None:
        print(line, flush=True)

    base = Settings.from_env(env)
    raw = base.home / "demo" / "raw"
    today = dt.datetime.now(dt.UTC).date()
    prepare_demo_data(
        raw, DemoParams(args.customers, args.days, args.seed), today - dt.timedelta(days=1), say
    )
    settings = replace(base, raw_dir=raw, as_of=today.isoformat(), local_destinations=True)

    def tick(values: Mapping[str, str], clock: dt.datetime) -> str:
        results = tick_journeys(settings, {**env, **values}, clock)
        return "; ".join(f"{r.journey} {r.entered} entered, {r.sent} sent, {r.exited} left" for r in results)

    ok, where = demo_loop(
        raw,
        settings.state_dir,
        settings.warehouse,
        args.seed,
        env,
        run=lambda values, clock: run_pipeline(
            replace(settings, journey_clock=clock), env, args.verbose, values
        ),
        say=say,
        as_of=today,
        tick=tick,
    )
    if ok:
        print(f"Engagement receiver and demo shop ran on {where} (now stopped)")
        print_summary(settings)
    return 0 if ok else 1
