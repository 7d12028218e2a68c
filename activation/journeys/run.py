"""Ticks of every journey at one clock: what the Dagster tick asset, `tideline journey tick`, the
demo and the simulation call.

    results = run_ticks(con, journeys, clock, deliver=EngineDelivery(config, raw_dir, limits),
                        catalog=Catalog.default(audiences=...), raw_dir=raw_dir)

First the live feed is taken in (the events and orders appended to the landing zone since the last
tick: activation.journeys.feed), so conditions see what happened a minute ago; then each journey
ticks (activation.journeys.tick) with the versions its entries in flight are on. Conditions read
the catalog's relations, with events and orders replaced by the feed's views.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import duckdb

from activation.conditions import Catalog, Relation
from activation.journeys import feed
from activation.journeys.deliver import Deliver
from activation.journeys.parse import parse_journey
from activation.journeys.spec import Journey, TagAction
from activation.journeys.store import SCHEMA, ensure_schema
from activation.journeys.tick import JourneyTick, TickResult
from activation.warehouse import table_exists

log = logging.getLogger(__name__)


def journey_catalog(catalog: Catalog, con: duckdb.DuckDBPyConnection, schema: str = SCHEMA) -> Catalog:
    """`catalog` with events and orders read through the live feed's views when they exist."""
    relations = dict(catalog.relations)
    for name in ("events", "orders"):
        if table_exists(con, schema, name):
            relations[name] = Relation.model(schema, name)
    return replace(catalog, relations=MappingProxyType(relations))


def journey_tags(journeys: Sequence[Journey]) -> list[str]:
    """The tags journey steps add or remove: conditions may name them (the parser allowed it)."""
    return sorted({s.action.tag for j in journeys for s in j.steps if isinstance(s.action, TagAction)})


def earlier_versions(
    con: duckdb.DuckDBPyConnection, journey: Journey, schema: str = SCHEMA
) -> dict[str, Journey]:
    """The journey's earlier versions that still have entries in flight, parsed from the definitions
    the versions table keeps (customers finish on the version they entered)."""
    rows = con.execute(
        f"""select v.version, v.definition, v.source from {schema}.versions as v
            where v.journey = ? and v.version <> ?
              and exists (select 1 from {schema}.entries_live as e where e.journey = v.journey
                          and e.version = v.version and e.exited_at is null)""",
        [journey.name, journey.version],
    ).fetchall()
    found: dict[str, Journey] = {}
    if not rows:
        return found
    for version, definition, source in rows:
        old = parse_journey(json.loads(definition), f"{source} (version {version})", journey.name)
        # the stored definition is the one that was live; pausing or archiving the file applies to all
        found[version] = replace(old, status=journey.status)
    return found


def run_ticks(
    con: duckdb.DuckDBPyConnection,
    journeys: Sequence[Journey],
    clock: dt.datetime,
    *,
    deliver: Deliver,
    catalog: Catalog,
    raw_dir: Path | None = None,
    default_timezone: str = "UTC",
    schema: str = SCHEMA,
) -> list[TickResult]:
    """One tick of every journey at `clock` (naive UTC or aware)."""
    ensure_schema(con, schema)
    if raw_dir is not None:
        take_in_live_feed(con, Path(raw_dir))
    catalog = journey_catalog(catalog, con).with_tags(journey_tags(journeys))
    results = []
    for journey in journeys:
        versions = earlier_versions(con, journey, schema)
        tick = JourneyTick(
            con,
            journey,
            clock,
            catalog=catalog,
            deliver=deliver,
            versions=versions,
            default_timezone=default_timezone,
            schema=schema,
        )
        results.append(tick.run())
    return results


def take_in_live_feed(con: duckdb.DuckDBPyConnection, raw_dir: Path) -> None:
    """The feed's new lines; the live rows a dbt build has taken over dropped; its views (again: a
    dbt build may have created the relations they read)."""
    feed.take_in_feed(con, raw_dir)
    feed.prune_feed(con)
    feed.refresh_views(con)
