"""Entries in flight that are overdue: the tick should have moved them and has not (a step that keeps
failing, a customer the warehouse never learns, ticks that stopped)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import duckdb

from activation.journeys.store import SCHEMA
from activation.warehouse import table_exists


@dataclass(frozen=True)
class Stuck:
    count: int = 0
    oldest: dt.datetime | None = None
    by_step: dict[str, int] = field(default_factory=dict)


def stuck_entries(con: duckdb.DuckDBPyConnection, journey: str, due_before: dt.datetime) -> Stuck:
    """Entries of `journey` in flight whose due time is before `due_before`."""
    # entries in flight are live ones; a warehouse no tick has opened since the split has `entries`
    table = next((t for t in ("entries_live", "entries") if table_exists(con, SCHEMA, t)), None)
    if table is None:
        return Stuck()
    rows = con.execute(
        f"""select current_node, count(*), min(due_at) from {SCHEMA}.{table}
            where journey = ? and exited_at is null and due_at < ? group by 1 order by 1""",
        [journey, due_before],
    ).fetchall()
    if not rows:
        return Stuck()
    return Stuck(sum(r[1] for r in rows), min(r[2] for r in rows), {r[0]: int(r[1]) for r in rows})
