"""The delivery ledger and sync state, in the warehouse schema `tideline_sync`.

delivery_log     append-only events, one per record per step: in_flight, sent, failed,
                 dead_letter, skipped (with reason), holdout, deferred, unknown, released
                 (an SMTP record a crashed run never handed over: planned again). Deferred
                 events carry `not_before`, when quiet hours end for that customer (UTC).
                 A staged launch's events carry its `stage` (test, pilot, rollout, full).
delivery_ledger  view: the latest event per idempotency key (what happened to each message),
                 written so that a filter on it (a sync, a status) is applied before the latest
                 event is looked up: asking for one sync's in-flight records does not rank the log.
synced_state     per sync (segment × destination) and customer: the field hash last delivered
                 (a 64-bit hash of the mapped fields), which the planner diffs against; in
                 mirror mode also the fields themselves, so a delete carries the identifiers
                 the destination needs to remove the customer (e.g. hashed emails); and the
                 generation: how many deliveries have been folded for the customer, part of the
                 next change's idempotency key, so a change back to fields delivered before
                 (A -> B -> A) is a new key and is sent, never taken for the old delivery.
removed_state    mirror mode: the generation of a customer whose delete was delivered, so a
                 customer who comes back with the fields they left with gets a new key too.
sync_runs        one row per sync run: planned, added, changed, removed, sent, skipped by
                 reason, failed, dead letters, duration; who or what launched it (launched_by),
                 the campaign and content version, and the launch's stage (activation.launches).
launch_decisions every decision of a staged launch (activation.launches): a pilot gate's verdict
                 and each metric's numbers, a roll-out's winner, releases, cancellations and
                 approvals, with who decided.
suppressions     global suppression list (unsubscribed, hard_bounced, complained, erased),
                 per channel or 'all'; operators add to it (`suppress`).
consent_revocations  unsubscribes and complaints the engagement receiver recorded, taken in by
                 every sync before it plans (activation.intake), so they stop the very next send
                 without a dbt rebuild; consent_intake_files remembers how far each of the
                 receiver's append-only files has been read.

Appending is what keeps the ledger fast and crash-safe. For a destination whose delivery
is not idempotent (SMTP), a batch is marked in_flight (committed) before it is handed
over, and sent/failed after; a run that dies in between leaves in_flight rows the next
run marks `unknown` and never resends. For idempotent destinations (HTTP with an
Idempotency-Key, table upserts, audience files) outcomes are written per window of
records after delivery; a run that dies first leaves those keys unrecorded, and the next
run plans and sends them again under the same keys, which the destination deduplicates.
"""

from __future__ import annotations

import datetime as dt

import duckdb

from activation.warehouse import table_exists

SCHEMA = "tideline_sync"
FINAL = ("sent", "dead_letter", "unknown")  # never sent again for the same idempotency key

# The tables dbt reads (delivery_log, sync_runs) are declared again, for a warehouse without them yet,
# by the macro sync_ledger_columns() (dbt_project/macros/sync_ledger.sql); tests/dbt/test_sync_ledger.py
# holds the two to the same columns and types: change both.
DDL = f"""
create schema if not exists {SCHEMA};
create sequence if not exists {SCHEMA}.log_seq;
create table if not exists {SCHEMA}.delivery_log (
    seq bigint default nextval('{SCHEMA}.log_seq'),
    idempotency_key uuid not null,
    sync_key varchar not null,
    sync_id varchar not null,
    customer_id varchar not null,
    action varchar not null,
    status varchar not null,
    reason varchar,
    error varchar,
    attempt integer not null default 0,
    remote_id varchar,
    channel varchar,
    campaign varchar,
    variant varchar,
    content_version varchar,
    recorded_at timestamp not null,
    not_before timestamp,  -- deferred records: when they may go out (UTC)
    stage varchar          -- a staged launch's stage: test, pilot, rollout, full (null: no launch plan)
);
create or replace view {SCHEMA}.delivery_ledger as
select * from {SCHEMA}.delivery_log as l
where l.seq = (select max(n.seq) from {SCHEMA}.delivery_log as n where n.idempotency_key = l.idempotency_key);
create table if not exists {SCHEMA}.synced_state (
    sync_key varchar not null,
    customer_id varchar not null,
    field_hash ubigint not null,
    synced_at timestamp not null,
    fields_json varchar,  -- mirror mode: the fields last delivered, sent again with the delete
    generation integer    -- deliveries folded for the customer (null: folded before generations)
);
create table if not exists {SCHEMA}.removed_state (
    sync_key varchar not null,
    customer_id varchar not null,
    generation integer not null,  -- the generation the delivered delete left
    removed_at timestamp not null
);
create table if not exists {SCHEMA}.sync_runs (
    sync_id varchar primary key,
    sync_key varchar not null,
    segment varchar not null,
    destination varchar not null,
    mode varchar not null,
    dry_run boolean not null,
    started_at timestamp not null,
    finished_at timestamp,
    segment_rows bigint,
    rejected_keys bigint,
    planned bigint,
    added bigint,
    changed bigint,
    removed bigint,
    sent bigint,
    skipped bigint,
    skipped_by_reason varchar,
    failed bigint,
    dead_letters bigint,
    unknown bigint,
    duration_seconds double,
    status varchar,
    launched_by varchar,      -- schedule:<name>, sensor:<name>, user:<name>, cli:<person>
    campaign varchar,
    content_version varchar,
    launch_stage varchar      -- the launch's stage this run (activation.launches), null without one
);
create table if not exists {SCHEMA}.launch_decisions (
    decision_id varchar not null,     -- one per decision (a gate's metric rows share it)
    sync_key varchar not null,
    campaign varchar not null,
    content_version varchar not null,
    stage varchar not null,           -- pilot, rollout, approval
    decision varchar not null,        -- pass, fail, released, cancelled, approved, winner, fallback
    metric varchar,                   -- null: the overall decision, else the metric judged
    value double,                     -- the observed rate (or the winner's conversion rate)
    bound double,                     -- the Wilson bound the rule read (lower for min, upper for max)
    threshold double,
    sample bigint,                    -- the rate's denominator
    variant varchar,                  -- roll-out: the variant that goes to the rest
    detail varchar,
    decided_at timestamp not null,
    decided_by varchar not null       -- gate:auto, or the person (release, cancel, approve)
);
create table if not exists {SCHEMA}.suppressions (
    customer_id varchar not null,
    channel varchar not null,
    reason varchar not null,
    created_at timestamp not null
);
create table if not exists {SCHEMA}.consent_revocations (
    customer_id varchar not null,
    channel varchar not null,
    revoked_at timestamp not null,  -- when the customer revoked (UTC), the consent line's consented_at
    source varchar,                 -- unsubscribe link, complaint
    file varchar not null,          -- the receiver's file, relative to the landing zone
    line_offset bigint not null,    -- byte offset of the line in it: (file, line_offset) is the line's id
    taken_at timestamp not null
);
create table if not exists {SCHEMA}.consent_intake_files (
    file varchar not null,          -- relative to the landing zone
    bytes_read bigint not null,     -- complete lines up to here are taken in
    updated_at timestamp not null
);
"""


# the current layout, as information_schema reports it: when all of it is there, nothing runs
CURRENT = {
    ("delivery_log", "idempotency_key", "UUID"),
    ("delivery_log", "not_before", "TIMESTAMP"),
    ("delivery_log", "stage", "VARCHAR"),
    ("sync_runs", "launched_by", "VARCHAR"),
    ("sync_runs", "launch_stage", "VARCHAR"),
    ("launch_decisions", "decided_by", "VARCHAR"),
    ("synced_state", "field_hash", "UBIGINT"),
    ("synced_state", "fields_json", "VARCHAR"),
    ("synced_state", "generation", "INTEGER"),
    ("removed_state", "generation", "INTEGER"),
    ("sync_runs", "sync_id", "VARCHAR"),
    ("suppressions", "customer_id", "VARCHAR"),
    ("consent_revocations", "revoked_at", "TIMESTAMP"),
    ("consent_intake_files", "bytes_read", "BIGINT"),
}
LEDGER_TABLES = (
    "delivery_log",
    "synced_state",
    "removed_state",
    "sync_runs",
    "launch_decisions",
    "suppressions",
    "consent_revocations",
    "consent_intake_files",
)


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create or migrate the sync schema; one catalogue query when it is already current
    (every sync calls this, so it is kept off the rerun's path)."""
    found = set(
        con.execute(
            """select table_name, column_name, data_type from information_schema.columns
               where table_schema = ? and list_contains(?, table_name)""",
            [SCHEMA, list(LEDGER_TABLES)],
        ).fetchall()
    )
    if found >= CURRENT and table_exists(con, SCHEMA, "delivery_ledger"):
        return
    migrated = _set_aside_legacy_state(con)
    migrated |= _convert_legacy_keys(con)
    for table, column, kind in (
        ("synced_state", "fields_json", "varchar"),
        ("synced_state", "generation", "integer"),
        ("delivery_log", "not_before", "timestamp"),
        ("delivery_log", "stage", "varchar"),
        ("sync_runs", "launched_by", "varchar"),
        ("sync_runs", "campaign", "varchar"),
        ("sync_runs", "content_version", "varchar"),
        ("sync_runs", "launch_stage", "varchar"),
    ):
        if _column_type(con, table, "sync_key") and not _column_type(con, table, column):
            con.execute(f"alter table {SCHEMA}.{table} add column {column} {kind}")
            migrated = True
    for statement in DDL.split(";"):
        if statement.strip():
            con.execute(statement)
    if migrated:
        # a WAL holding an ALTER of a table whose default calls nextval() cannot be replayed by
        # DuckDB 1.5 after a crash; a checkpoint right after a migration keeps it out of the WAL
        con.execute("checkpoint")


def _column_type(con: duckdb.DuckDBPyConnection, table: str, column: str) -> str | None:
    row = con.execute(
        """select data_type from information_schema.columns
           where table_schema = ? and table_name = ? and column_name = ?""",
        [SCHEMA, table, column],
    ).fetchone()
    return row[0] if row else None


def _convert_legacy_keys(con: duckdb.DuckDBPyConnection) -> bool:
    """Ledgers from before UUID keys held the full sha256 hex; the UUID key is its first 128
    bits, so old keys convert exactly and a message already sent is still never sent again."""
    if _column_type(con, "delivery_log", "idempotency_key") != "VARCHAR":
        return False
    con.execute(
        f"""alter table {SCHEMA}.delivery_log alter idempotency_key set data type uuid
            using cast(substr(idempotency_key, 1, 32) as uuid)"""
    )
    return True


def _set_aside_legacy_state(con: duckdb.DuckDBPyConnection) -> bool:
    """synced_state from before the 64-bit field hash (md5 text) is renamed, not dropped: the
    next sync of each segment is then a full resync (upserts are idempotent), and nothing is lost."""
    if _column_type(con, "synced_state", "field_hash") != "VARCHAR":
        return False
    con.execute(f"drop table if exists {SCHEMA}.synced_state_md5")
    con.execute(f"alter table {SCHEMA}.synced_state rename to synced_state_md5")
    return True


def due_deferrals(con: duckdb.DuckDBPyConnection, now: dt.datetime) -> dict[str, dt.datetime]:
    """Syncs with deferred records whose quiet hours have ended: sync_key -> latest such time (UTC).

    A deferral counts while it is its message's latest event. The log is read twice, streaming:
    once for the due deferrals, once for the latest event of just those messages (a hash join
    on their keys and a group-by, both of which DuckDB spills), never ranking the whole log."""
    if not _column_type(con, "delivery_log", "not_before"):
        return {}
    rows = con.execute(
        f"""with due as materialized (
                select idempotency_key, sync_key, not_before, seq from {SCHEMA}.delivery_log
                where status = 'deferred' and not_before <= ?
            ),
            latest as (
                select idempotency_key, max(seq) as seq from {SCHEMA}.delivery_log
                where idempotency_key in (select idempotency_key from due)
                group by 1
            )
            select d.sync_key, max(d.not_before) from due as d
            inner join latest as l on d.idempotency_key = l.idempotency_key and d.seq = l.seq
            group by 1""",
        [now.replace(tzinfo=None)],
    ).fetchall()
    return dict(rows)


def suppress(con: duckdb.DuckDBPyConnection, customer_id: str, channel: str, reason: str) -> None:
    """Add a customer to the suppression list ('all' channels or one: email, sms, push)."""
    ensure_schema(con)
    con.execute(
        f"insert into {SCHEMA}.suppressions values (?, ?, ?, now()::timestamp)",
        [customer_id, channel, reason],
    )
