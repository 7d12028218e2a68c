"""`tideline journey simulate NAME --from D1 --to D2`: the history replayed through a journey with
sending off, before it goes live.

Ticks run at every `every` (default one hour) from D1 00:00 to D2 24:00 (UTC) on a scratch copy of
the journey state (schema `journey_sim`, emptied first and dropped after), with the same code as
live ticks: the same triggers, waits, branches, exits and goals, and the activation policies
deciding each message (consent, suppressions, quiet hours) in dry runs that send and record nothing.
So the report says how many customers would enter, reach each step, receive each message, convert
and exit, and why the others would not get a message. What it cannot replay: the customer table
and scores are today's (conditions on attributes see the current values), frequency caps count only
messages really sent before (the simulation's own messages are not recorded), and customers do not
react to messages that were never sent (conversions are the organic ones: a baseline for the lift).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any

import duckdb

from activation.conditions import Catalog
from activation.journeys.deliver import EngineDelivery
from activation.journeys.run import journey_catalog
from activation.journeys.spec import Journey
from activation.journeys.store import ensure_schema
from activation.journeys.tick import JourneyTick

SIM_SCHEMA = "journey_sim"


@dataclass
class Simulation:
    journey: str
    version: str
    start: dt.datetime
    end: dt.datetime
    ticks: int = 0
    entered: int = 0
    held_out: int = 0
    reached: dict[str, int] = field(default_factory=dict)  # step -> entries that reached it
    messages: dict[str, int] = field(default_factory=dict)  # delivery step -> would be sent
    skipped: dict[str, int] = field(default_factory=dict)  # "step: reason" -> entries
    converted: int = 0
    exited: dict[str, int] = field(default_factory=dict)  # exit reason -> entries
    in_flight: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "journey": self.journey,
            "version": self.version,
            "from": self.start.isoformat(sep=" "),
            "to": self.end.isoformat(sep=" "),
            "ticks": self.ticks,
            "entered": self.entered,
            "held_out": self.held_out,
            "reached": self.reached,
            "messages": self.messages,
            "skipped": self.skipped,
            "converted": self.converted,
            "exited": self.exited,
            "in_flight": self.in_flight,
        }

    def lines(self) -> list[str]:
        out = [
            f"Journey {self.journey} (version {self.version}) simulated from {self.start:%Y-%m-%d %H:%M} "
            f"to {self.end:%Y-%m-%d %H:%M} in {self.ticks:,} ticks, sending nothing:",
            f"  entered      {self.entered:,} ({self.held_out:,} held out)",
        ]
        out += [f"  reached      {step}: {n:,}" for step, n in self.reached.items()]
        out += [f"  would send   {step}: {n:,}" for step, n in self.messages.items()]
        out += [f"  not sent     {what}: {n:,}" for what, n in self.skipped.items()]
        out.append(f"  converted    {self.converted:,}")
        out += [f"  exited       {reason}: {n:,}" for reason, n in self.exited.items()]
        out.append(f"  in flight at the end: {self.in_flight:,}")
        return out


def simulate(
    con: duckdb.DuckDBPyConnection,
    journey: Journey,
    start: dt.datetime,
    end: dt.datetime,
    *,
    deliver: EngineDelivery,
    catalog: Catalog,
    every: dt.timedelta = dt.timedelta(hours=1),
    default_timezone: str = "UTC",
) -> Simulation:
    """Replay [start, end] through `journey` (a dry-run `deliver`: its dry_run must be set)."""
    if not deliver.dry_run:
        raise ValueError("a simulation sends nothing: give it a dry-run delivery")
    if every <= dt.timedelta(0) or end <= start:
        raise ValueError("a simulation needs start < end and a positive tick interval")
    con.execute(f"drop schema if exists {SIM_SCHEMA} cascade")
    ensure_schema(con, SIM_SCHEMA)
    catalog = journey_catalog(catalog, con)
    live = journey if journey.status == "active" else _active(journey)
    sim = Simulation(journey.name, journey.version, start, end)
    try:
        clock = start
        while clock <= end:
            JourneyTick(
                con,
                live,
                clock,
                catalog=catalog,
                deliver=deliver,
                default_timezone=default_timezone,
                schema=SIM_SCHEMA,
            ).run()
            sim.ticks += 1
            clock += every
        _summarise(con, sim, live)
    finally:
        con.execute(f"drop schema if exists {SIM_SCHEMA} cascade")
    return sim


def _active(journey: Journey) -> Journey:
    return replace(journey, status="active")


def _summarise(con: duckdb.DuckDBPyConnection, sim: Simulation, journey: Journey) -> None:
    s = SIM_SCHEMA
    sim.entered, sim.held_out, sim.converted, sim.in_flight = con.execute(
        f"""select count(*), count(*) filter (where holdout), count(converted_at),
                   count(*) filter (where exited_at is null) from {s}.entries"""
    ).fetchone()
    order = {step.id: i for i, step in enumerate(journey.steps)}
    reached = dict(
        con.execute(
            f"select to_node, count(distinct entry_id) from {s}.steps where to_node is not null group by 1"
        ).fetchall()
    )
    sim.reached = {k: int(reached[k]) for k in sorted(reached, key=lambda k: order.get(k, len(order)))}
    delivery_kinds = {step.id for step in journey.steps if step.kind in ("send", "sync", "notify")}
    sent = dict(
        con.execute(
            f"select from_node, count(*) from {s}.steps where outcome in ('sent', 'synced', 'notified') group by 1"
        ).fetchall()
    )
    sim.messages = {k: int(sent.get(k, 0)) for k in sorted(delivery_kinds, key=order.get)}
    sim.skipped = {
        f"{step}: {reason}": int(n)
        for step, reason, n in con.execute(
            f"""select from_node, reason, count(*) from {s}.steps where outcome in ('skipped', 'failed')
                group by 1, 2 order by 1, 2"""
        ).fetchall()
    }
    sim.exited = {
        str(reason): int(n)
        for reason, n in con.execute(
            f"select exit_reason, count(*) from {s}.entries where exited_at is not null group by 1 order by 1"
        ).fetchall()
    }
