"""The demo loop `make run` runs: demo data up to yesterday, then, as of today, the pipeline
(it sends), the simulated audience (it opens, clicks, unsubscribes and buys through the engagement
receiver and the demo shop), and the pipeline again (it loads what came back).

The as-of date travels as an argument: the caller (tideline/commands/demo.py) passes today, and
the pipeline runs it is given record it with their state folder's last run (last_run.json, which
`tideline ui` reads); nothing reads it back from the demo data.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from tideline.demo.audience import run_audience
from tideline.demo.data import generate_demo_data
from tideline.demo.local import (
    RECEIVER_WEBHOOK_SECRET,
    TRACKING_SECRET,
    demo_secrets,
    local_destinations,
    running_receiver,
)
from tideline.demo.shop import DemoShop

# what the demo loop itself writes into its landing zone (receiver, shop): kept when the
# generated data is replaced for a new day, as the ledger in the warehouse is
LIVE_FILES = ("engagement", "events/shop", "commerce/orders/shop", "crm/consents/receiver-*.jsonl")
QUIET_HOURS = ("TIDELINE_QUIET_HOURS_START", "TIDELINE_QUIET_HOURS_END")

# runs the pipeline once: (the activation config's ${VAR} values given as data, the journeys' clock
# as ISO text, '' = the wall clock) -> succeeded
RunPipeline = Callable[[Mapping[str, str], str], bool]
# one tick of every journey outside the pipeline: (the ${VAR} values, the clock) -> one line to print
TickJourneys = Callable[[Mapping[str, str], dt.datetime], str]

# The demo's journeys went live JOURNEY_DAYS days before the as-of date: the first run ticks them
# at that clock, then the loop ticks them every JOURNEY_TICK_HOURS up to now, so their waits (an
# hour, a day, two days) pass and every step of the flows is reached before the audience reacts.
JOURNEY_DAYS = 3
JOURNEY_TICK_HOURS = 6


@dataclass(frozen=True)
class DemoParams:
    customers: int
    days: int
    seed: int


def prepare_demo_data(raw: Path, params: DemoParams, end_date: dt.date, say: Callable[[str], None]) -> None:
    """The demo landing zone for these parameters ending on `end_date`: reused when it is there
    already (its `_truth/demo.json` says so), else (re)generated, carrying the loop's own files over."""
    marker = raw / "_truth" / "demo.json"
    existing = json.loads(marker.read_text()) if marker.exists() else {}
    wanted = {"customers": params.customers, "days": params.days, "seed": params.seed}
    if all(existing.get(k) == v for k, v in {**wanted, "end_date": end_date.isoformat()}.items()):
        say(f"Reusing demo data in {raw}")
        return
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
        raw, customers=params.customers, days=params.days, seed=params.seed, end_date=end_date
    )
    say(
        f"Generated demo data: {summary.customers:,} customers, {summary.orders:,} orders, "
        f"{summary.events:,} events up to {summary.end_date} in {time.monotonic() - started:.1f}s"
    )
    if stash.exists():
        for path in sorted(p for p in stash.rglob("*") if p.is_file()):
            target = raw / path.relative_to(stash)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(path, target)
        shutil.rmtree(stash)


def demo_loop(
    raw: Path,
    state_dir: Path,
    warehouse: Path,
    seed: int,
    env: Mapping[str, str],
    run: RunPipeline,
    say: Callable[[str], None],
    as_of: dt.date,
    tick: TickJourneys | None = None,
) -> tuple[bool, str]:
    """Pipeline, journey ticks, simulated audience, pipeline again, with the receiver, the demo shop
    and the local destinations running; (succeeded, where the receiver and shop ran). `env` is the
    caller's environment (its secrets and quiet hours win over the sandbox's). The journeys go live
    JOURNEY_DAYS before `as_of`: the first run ticks them at that clock and `tick` catches them up
    to now, every JOURNEY_TICK_HOURS; the second run ticks them at the wall clock."""
    keys = demo_secrets(state_dir, env)
    # The simulated audience reads its messages at once, at whatever hour `make run` is run, so
    # the demo sends around the clock (unless TIDELINE_QUIET_HOURS_* are set): otherwise quiet
    # hours would defer up to half the experiment's emails to a run that never comes.
    quiet = {name: env.get(name) or "0" for name in QUIET_HOURS}
    with ExitStack() as stack:
        receiver_url = stack.enter_context(
            running_receiver(raw, keys[TRACKING_SECRET], keys[RECEIVER_WEBHOOK_SECRET])
        )
        shop = stack.enter_context(DemoShop(raw))
        local = stack.enter_context(local_destinations(state_dir, env))
        say(f"Engagement receiver on {receiver_url}, demo shop on {shop.base_url} (both append to {raw})")
        say(f"Local destinations: SMTP {local.smtp}, HTTP {local.http}, files in {local.outbox}")
        if quiet[QUIET_HOURS[0]] == quiet[QUIET_HOURS[1]]:
            say("Quiet hours are off for the demo (config/activation.yml: TIDELINE_QUIET_HOURS_*)")
        values = {**quiet, "TIDELINE_RECEIVER_URL": receiver_url, **local.values}
        live = dt.datetime.combine(as_of - dt.timedelta(days=JOURNEY_DAYS), dt.time())
        ok = run(values, live.isoformat() if tick is not None else "")
        if ok and tick is not None:
            catch_up_journeys(tick, values, live, say)
        if ok:
            started = time.monotonic()
            result = run_audience(
                state_dir,
                shop_url=shop.base_url,
                receiver_url=receiver_url,
                webhook_secret=keys[RECEIVER_WEBHOOK_SECRET],
                warehouse=warehouse,
                seed=seed,
            )
            say(f"Simulated audience in {time.monotonic() - started:.1f}s: {result.describe()}")
            say("Running the pipeline again to load what came back ...")
            ok = run(values, "")
    return ok, f"{receiver_url} and {shop.base_url}"


def catch_up_journeys(
    tick: TickJourneys, values: Mapping[str, str], live: dt.datetime, say: Callable[[str], None]
) -> None:
    """Tick the journeys every JOURNEY_TICK_HOURS from `live` up to now (UTC)."""
    started = time.monotonic()
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    clock, ticks = live + dt.timedelta(hours=JOURNEY_TICK_HOURS), 0
    say(
        f"Journeys live since {live:%Y-%m-%d %H:%M} UTC: ticking them every {JOURNEY_TICK_HOURS} hours up to now ..."
    )
    last = ""
    while clock < now:
        last = tick(values, clock)
        ticks += 1
        clock += dt.timedelta(hours=JOURNEY_TICK_HOURS)
    last = tick(values, now)
    ticks += 1
    say(f"Journeys: {ticks} ticks in {time.monotonic() - started:.1f}s; the last: {last}")
