"""The delivery ledger and sync state, in the warehouse schema `tideline_sync`.

delivery_log     append-only events, one per record per step: in_flight, sent, failed,
                 dead_letter, skipped (with reason), holdout, deferred, unknown.
delivery_ledger  view: the latest event per idempotency key (what happened to each message).
synced_state     per sync (segment × destination) and customer: the field hash last delivered,
                 which the planner diffs against.
sync_runs        one row per sync run: planned, added, changed, removed, sent, skipped by
                 reason, failed, dead letters, duration.
suppressions     global suppression list (unsubscribed, hard_bounced, complained, erased),
                 per channel or 'all'; the engagement receiver and operators add to it.

Appending is what keeps the ledger fast and crash-safe: a batch is marked in_flight
(committed) before it is handed to the destination, and sent/failed after; a run
that dies in between leaves in_flight rows the next run resolves.
"""

from __future__ import annotations

import duckdb

SCHEMA = "tideline_sync"
FINAL = ("sent", "dead_letter", "unknown")  # never sent again for the same idempotency key

DDL = f"""
create schema if not exists {SCHEMA};
create sequence if not exists {SCHEMA}.log_seq;
create table if not exists {SCHEMA}.delivery_log (
    seq bigint default nextval('{SCHEMA}.log_seq'),
    idempotency_key varchar not null,
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
    recorded_at timestamp not null
);
create or replace view {SCHEMA}.delivery_ledger as
select * from {SCHEMA}.delivery_log
qualify row_number() over (partition by idempotency_key order by seq desc) = 1;
create table if not exists {SCHEMA}.synced_state (
    sync_key varchar not null,
    customer_id varchar not null,
    field_hash varchar not null,
    synced_at timestamp not null
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
    status varchar
);
create table if not exists {SCHEMA}.suppressions (
    customer_id varchar not null,
    channel varchar not null,
    reason varchar not null,
    created_at timestamp not null
);
"""


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    for statement in DDL.split(";"):
        if statement.strip():
            con.execute(statement)


def suppress(con: duckdb.DuckDBPyConnection, customer_id: str, channel: str, reason: str) -> None:
    """Add a customer to the suppression list ('all' channels or one: email, sms, push)."""
    ensure_schema(con)
    con.execute(
        f"insert into {SCHEMA}.suppressions values (?, ?, ?, now()::timestamp)",
        [customer_id, channel, reason],
    )
