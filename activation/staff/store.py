"""Staff notification state in the warehouse, schema `tideline_staff` (created by this code, like
tideline_sync; dbt reads it as the source `tideline_staff` for marts.fct_staff_notifications).

notifications  one row per notification: (rule, customer, event key, recipient) made once, its id
               the first 32 hex digits of sha256(rule|customer|event key|recipient), so a rerun
               never makes it twice. It holds who it is for (staff id, or null for the team
               channel), the route and whether it fell back (and why, in words), the destination
               (fixed when it is made), the message in words, the link, whether it goes in a
               digest (and which), created / due / sent times and the status:
                 pending    to send (due_at: now)
                 deferred   held by the employee's quiet hours, due when they end (never dropped)
                 in_digest  waits for the employee's daily digest
                 sent       the destination took it (a digest's members: the digest was sent)
                 unknown    it went out and no answer came back: maybe delivered, never resent
                 failed     the destination refused it or could not be reached: retried next run
                 dead       failed policies.max_attempts times (the ledger's dead letter)
                 skipped    not sent, status_reason says why (the customer was erased)
               Sending goes through the activation engine and its ledger (tideline_sync): the row's
               idempotency_key is the ledger key, and a status is always read back from the
               ledger, so a run killed between a send and this table's update tells the truth
               at the next run.
"""

from __future__ import annotations

import duckdb

SCHEMA = "tideline_staff"
QUEUE = "send_queue"

DDL = f"""
create schema if not exists {SCHEMA};
create table if not exists {SCHEMA}.notifications (
    notification_id varchar primary key,
    rule varchar not null,          -- the rule's name, journey:<journey>:<step>, or digest
    rule_kind varchar not null,     -- the rule's kind, journey or digest
    customer_id varchar,            -- the customer it is about (null for a digest)
    event_key varchar not null,     -- what happened: an order id, event id, MQL day, ISO week, entry id, digest day
    staff_id varchar,               -- the employee it goes to; null: the team channel
    recipient varchar not null,     -- staff:<staff_id> or team (the ledger's customer id)
    route varchar not null,         -- owner | manager | all_owners | first_owner | team
    fell_back boolean not null,     -- routed to the team channel instead of a person
    fallback_reason varchar,        -- why, in words (no employee linked, no usable handle, ...)
    destination varchar not null,   -- the destination name in the ledger
    handle_kind varchar not null,   -- webhook | email
    message varchar not null,       -- the notification in words (ids and scores, never personal data)
    link varchar,                   -- <link_base_url>/<customer_id>
    via_digest boolean not null,
    digest_id varchar,              -- a digest member: the digest's notification id
    occurred_at timestamp,          -- when the event happened (null when unknown)
    created_at timestamp not null,
    due_at timestamp not null,
    status varchar not null,
    status_reason varchar,
    attempts integer not null default 0,
    idempotency_key uuid,           -- the ledger key once queued
    sent_at timestamp,
    updated_at timestamp not null
);
"""

FINAL = ("sent", "unknown", "dead", "skipped")


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(DDL)
