"""Journey state in the warehouse, schema `tideline_journeys` (plain tables the tick writes; dbt
reads them as the source `tideline_journeys` for the journey marts).

versions      one row per journey version ever seen: its canonical definition (JSON), so customers
              in flight finish on the version they entered even after the file changed
journeys      one row per journey: its current version and status (active, paused, archived)
entries       view: every entry, in flight or finished (entries_live union all entries_history); what
              dbt, BI and people read. One row per entry: entry id (32 hex digits of sha256 of journey, customer and
              trigger id: the same trigger always makes the same entry, so a rerun after a crash
              never enters anyone twice), journey, version, customer, trigger id, entered at, the
              holdout flag, the current node and when it was reached, when it is due, and once
              finished when and why (exit_reason: completed, converted, exit_condition, holdout,
              archived), the arm of the last split it passed, and converted_at: when the goal
              was first seen met, looked for until goal_until whether the entry is still in
              flight, exited or held out (so conversion and lift are measured on every entry)
entries_live  the entries a tick works on: in flight, or finished with their goal window still
              open (conversion is looked for until goal_until). Every tick statement scans this
              table, so it is kept to those: the tick moves the rest out (archive)
entries_history  the entries that are done: finished, and converted or past their goal window.
              Append-only, never read by a tick's moves, so a tick's cost follows the entries in
              flight, not the months of history behind them
steps         append-only log of every node transition: entry, from node, to node, outcome
              (entered, waited, branched, split, sent, skipped, deferred, failed, tagged, synced,
              notified, exited), reason, the tick and its clock
ticks         one row per tick per journey: the clock, counts (entered, advanced, sent, skipped,
              exited) and the counts by reason as JSON, duration
members       per journey with an audience or condition trigger: who matched at the last tick,
              so the next tick enters only those who newly match
tag_changes   tags added and removed by journey steps (append-only); marts.customer_tags reads it
live_events   events taken in from the landing zone's append-only JSON Lines since the last dbt
live_orders   build (activation.journeys.feed), so a tick sees an event within a minute; the
feed_files    views `events` and `orders` are dbt's relations plus these
"""

from __future__ import annotations

import duckdb

from activation.warehouse import transaction

SCHEMA = "tideline_journeys"

DDL = """
create schema if not exists {SCHEMA};
create table if not exists {SCHEMA}.versions (
    journey varchar not null,
    version varchar not null,
    definition varchar not null,   -- the canonical YAML value as JSON
    source varchar not null,       -- the file it came from
    first_seen_at timestamp not null,
    primary key (journey, version)
);
create table if not exists {SCHEMA}.journeys (
    journey varchar primary key,
    version varchar not null,      -- the current version: new entries enter it
    status varchar not null,       -- active | paused | archived
    changed_at timestamp not null
);
create table if not exists {SCHEMA}.entries_live (
    entry_id varchar primary key,
    journey varchar not null,
    version varchar not null,
    customer_id varchar not null,
    trigger_id varchar not null,
    entered_at timestamp not null,
    holdout boolean not null,
    current_node varchar,          -- null once exited
    node_entered_at timestamp,
    due_at timestamp,
    exited_at timestamp,
    exit_reason varchar,
    goal_until timestamp,          -- the goal is looked for until then (entered_at + within_days)
    converted_at timestamp,        -- when the goal was first seen met (holdout entries too)
    arm varchar,                   -- the arm of the last split the entry passed (the ledger's variant)
    tick_id varchar not null       -- the tick that last changed the row
);
create table if not exists {SCHEMA}.entries_history as select * from {SCHEMA}.entries_live limit 0;
create view if not exists {SCHEMA}.entries as
select * from {SCHEMA}.entries_live union all select * from {SCHEMA}.entries_history;
create sequence if not exists {SCHEMA}.step_seq;
create table if not exists {SCHEMA}.steps (
    seq bigint not null default nextval('{SCHEMA}.step_seq'),
    entry_id varchar not null,
    journey varchar not null,
    version varchar not null,
    customer_id varchar not null,
    from_node varchar,             -- null for the entry itself
    to_node varchar,               -- null for an exit
    outcome varchar not null,
    reason varchar,
    tick_id varchar not null,
    moved_at timestamp not null    -- the tick's clock
);
create table if not exists {SCHEMA}.ticks (
    tick_id varchar not null,
    journey varchar not null,
    clock timestamp not null,
    started_at timestamp not null,
    finished_at timestamp,
    entered bigint,
    advanced bigint,
    sent bigint,
    skipped bigint,
    exited bigint,
    by_reason varchar,             -- JSON object: reason -> count (skipped:no_consent, exited:converted)
    duration_seconds double,
    dry_run boolean not null default false
);
create table if not exists {SCHEMA}.members (
    journey varchar not null,
    customer_id varchar not null
);
create table if not exists {SCHEMA}.tag_changes (
    customer_id varchar not null,
    tag varchar not null,
    added boolean not null,
    journey varchar not null,
    entry_id varchar not null,
    changed_at timestamp not null
);
"""


def ensure_schema(con: duckdb.DuckDBPyConnection, schema: str = SCHEMA) -> None:
    """Create the journey tables that do not exist yet (idempotent). `schema` is SCHEMA, or the
    scratch schema of a simulation (a plain identifier from code)."""
    if not schema.isidentifier():
        raise ValueError(f"journey state schema {schema!r} is not a plain identifier")
    _split_entries(con, schema)
    con.execute(DDL.format(SCHEMA=schema))


def _split_entries(con: duckdb.DuckDBPyConnection, schema: str) -> None:
    """A warehouse from before the split has one table `entries`: it becomes entries_live (the next
    tick archives what is done) and `entries` the view over both."""
    kind = con.execute(
        "select table_type from information_schema.tables where table_schema = ? and table_name = 'entries'",
        [schema],
    ).fetchone()
    if kind and kind[0] == "BASE TABLE":
        con.execute(f"alter table {schema}.entries rename to entries_live")


def archive_done(con: duckdb.DuckDBPyConnection, schema: str, journey: str, clock: object) -> int:
    """Move the journey's entries that are done (finished, and converted or past their goal window
    at `clock`) from entries_live to entries_history, in one transaction; how many moved."""
    done = (
        "journey = ? and exited_at is not null "
        "and (converted_at is not null or goal_until is null or goal_until < ?)"
    )
    with transaction(con):
        con.execute(
            f"insert into {schema}.entries_history select * from {schema}.entries_live where {done}",
            [journey, clock],
        )
        (moved,) = con.execute(f"delete from {schema}.entries_live where {done}", [journey, clock]).fetchone()
    return int(moved)


ERASURES = ("tideline_sync", "erasure_requests")  # written by `tideline customer erase`


def erased_customers_sql(con: duckdb.DuckDBPyConnection) -> str | None:
    """A subquery of the customer ids with an erasure request, or None when none was ever made."""
    row = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        list(ERASURES),
    ).fetchone()
    if not row or not row[0]:
        return None
    return f"select customer_id from {ERASURES[0]}.{ERASURES[1]}"
