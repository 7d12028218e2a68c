"""An erasure request: recorded once, acted on at once by every sync, and by the next dbt build.

    report = record_erasure(con, person, by="dpo@shop.example", reason="ticket 4711")

Recording, in one transaction:

    tideline_sync.erasure_requests   one row per request: request_id, customer_id, requested_at,
                                     requested_by (staff), reason (the contract other modules read)
    tideline_sync.erased_identities  what future rows are matched on: (request_id, kind, value)
                                     with kind customer_id (the resolved id and every source id
                                     merged into it), anonymous_id, email_sha256 and phone_sha256
                                     (sha256 of the normalised email / E.164 phone: the email and
                                     phone themselves are never stored)
    tideline_sync.suppressions       (customer, 'all', 'erased') for the resolved and source ids:
                                     every sync and journey skips them from this moment

Then the scores derived from the person (every ml.* table with a customer_id column) are deleted:
they are recomputed from the marts, which will not hold the person after the next build.

What it sets in motion: the planner leaves erased customers out of every segment and deletes them
from upsert and mirror destinations (`erased_customers_sql`); staging filters the identities out
(dbt macro `not_erased`, reading erased_identities through python_owned_relation, so a warehouse
without the table builds). The raw landing files are the customer's own system of record and are
left alone: the report lists which of them hold the person (file and row count, never content),
read from the warehouse's landing snapshot; docs/privacy.md says how to purge them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

import duckdb

from activation.ledger import SCHEMA, ensure_schema
from activation.privacy.identity import Person, PrivacyRequestError
from activation.warehouse import columns_of, quote_identifier, table_exists

# dbt declares erased_identities again for a warehouse without it (macro erased_identity_columns,
# dbt_project/macros/erasure.sql); tests/dbt/test_erasure.py holds the two to the same columns.
DDL = f"""
create table if not exists {SCHEMA}.erasure_requests (
    request_id varchar primary key,
    customer_id varchar not null,   -- the resolved customer
    requested_at timestamp not null,
    requested_by varchar not null,  -- the member of staff who recorded it
    reason varchar
);
create table if not exists {SCHEMA}.erased_identities (
    request_id varchar not null,
    kind varchar not null,          -- customer_id | anonymous_id | email_sha256 | phone_sha256
    value varchar not null
);
"""
KINDS = ("customer_id", "anonymous_id", "email_sha256", "phone_sha256")

# The landing snapshot's tables (schema landing, one per entity) and how a row names the person:
# (table, id columns matched against the person's source ids, email column, anonymous id column)
LANDING = (
    ("crm_contacts", ("customer_id",), "email", None),
    ("crm_consents", ("customer_id",), None, None),
    ("commerce_orders", ("customer_id",), "email", None),
    ("events", ("customer_id",), None, "anonymous_id"),
    ("engagement_events", ("customer_id",), None, None),
    ("crm_customer_owners", ("customer_id",), None, None),
    ("crm_lead_status", ("customer_id",), None, None),
)


@dataclass
class ErasureReport:
    request_id: str
    customer_id: str
    requested_at: dt.datetime
    identities: dict[str, int]  # kind -> how many were recorded
    scores_deleted: dict[str, int] = field(default_factory=dict)  # ml table -> rows deleted
    landing_files: list[tuple[str, int]] = field(default_factory=list)  # (file, rows holding the person)


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The ledger's schema and suppressions (activation.ledger) and the two erasure tables."""
    ensure_schema(con)
    for statement in DDL.split(";"):
        if statement.strip():
            con.execute(statement)


def erased_customers_sql(con: duckdb.DuckDBPyConnection) -> str | None:
    """A subquery of the erased customer ids (resolved and source ids), for `x in (...)`, or None
    when nobody was ever erased (no table yet): the planner's filter."""
    if not table_exists(con, SCHEMA, "erased_identities"):
        return None
    return f"select value from {SCHEMA}.erased_identities where kind = 'customer_id'"


def record_erasure(
    con: duckdb.DuckDBPyConnection,
    person: Person,
    by: str,
    reason: str | None = None,
    now: dt.datetime | None = None,
) -> ErasureReport:
    """Record the request, suppress the person everywhere and delete their scores (one transaction);
    list the landing files that still hold them. PrivacyRequestError when `by` is empty or the
    person was erased already (nothing is recorded then)."""
    if not by or not by.strip():
        raise PrivacyRequestError("--by is required: who records the erasure (a member of staff)")
    if person.erased_by is not None:
        raise PrivacyRequestError(
            f"customer {person.customer_id} was erased already (request {person.erased_by}); nothing recorded"
        )
    now = (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None)
    landing = landing_files(con, person)  # before anything changes: read-only
    ensure_tables(con)
    request_id = uuid.uuid4().hex
    identities = _identities(person)
    con.execute("begin transaction")
    try:
        con.execute(
            f"insert into {SCHEMA}.erasure_requests values (?, ?, ?, ?, ?)",
            [request_id, person.customer_id, now, by.strip(), reason],
        )
        con.executemany(
            f"insert into {SCHEMA}.erased_identities values (?, ?, ?)",
            [[request_id, kind, value] for kind, value in identities],
        )
        con.executemany(
            f"insert into {SCHEMA}.suppressions values (?, 'all', 'erased', ?)",
            [[account, now] for account in person.account_ids],
        )
        deleted = _delete_scores(con, person)
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")
    counts = {kind: sum(1 for k, _ in identities if k == kind) for kind in KINDS}
    return ErasureReport(request_id, person.customer_id, now, counts, deleted, landing)


def _identities(person: Person) -> list[tuple[str, str]]:
    """(kind, value) pairs to match the person's rows on, now and in files still to come."""
    return (
        [("customer_id", v) for v in person.account_ids]
        + [("anonymous_id", v) for v in person.anonymous_ids]
        + [("email_sha256", v) for v in sorted(set(person.email_hashes))]
        + [("phone_sha256", v) for v in sorted(set(person.phone_hashes))]
    )


def _delete_scores(con: duckdb.DuckDBPyConnection, person: Person) -> dict[str, int]:
    """Delete the person's rows from every ml.* table keyed by customer_id: {table: rows}."""
    tables = [
        r[0]
        for r in con.execute(
            """select table_name from information_schema.columns
               where table_schema = 'ml' and lower(column_name) = 'customer_id'
                 and table_name in (select table_name from information_schema.tables
                                    where table_schema = 'ml' and table_type = 'BASE TABLE')
               order by 1"""
        ).fetchall()
    ]
    deleted: dict[str, int] = {}
    for table in tables:
        row = con.execute(
            f"delete from ml.{quote_identifier(table)} where list_contains(?, customer_id)",
            [list(person.account_ids)],
        ).fetchone()
        deleted[f"ml.{table}"] = int(row[0]) if row else 0
    return deleted


def landing_files(con: duckdb.DuckDBPyConnection, person: Person) -> list[tuple[str, int]]:
    """(file, rows) of every landing file whose rows name the person: by a source id, an anonymous
    id or a normalised email, and order lines of their orders. Read from the warehouse's landing
    snapshot (schema landing), which holds every file's rows as text with `_file`."""
    counts: dict[str, int] = {}
    for table, id_columns, email_column, anonymous_column in LANDING:
        present = columns_of(con, f"landing.{table}")
        if "_file" not in present:
            continue
        where, params = _landing_match(present, id_columns, email_column, anonymous_column, person)
        if not where:
            continue
        for file, n in con.execute(
            f"select _file, count(*) from landing.{quote_identifier(table)} where {where} group by 1", params
        ).fetchall():
            counts[file] = counts.get(file, 0) + int(n)
    orders = columns_of(con, "landing.commerce_orders")
    items = columns_of(con, "landing.commerce_order_items")
    if {"order_id", "customer_id"} <= orders and {"order_id", "_file"} <= items:
        where, params = _landing_match(orders, ("customer_id",), "email", None, person)
        for file, n in con.execute(
            f"""select _file, count(*) from landing.commerce_order_items
                where trim(order_id) in (select trim(order_id) from landing.commerce_orders where {where})
                group by 1""",
            params,
        ).fetchall():
            counts[file] = counts.get(file, 0) + int(n)
    return sorted(counts.items())


def _landing_match(
    present: set[str],
    id_columns: tuple[str, ...],
    email_column: str | None,
    anonymous_column: str | None,
    person: Person,
) -> tuple[str, list]:
    """A where clause over raw landing text naming the person, and its parameters."""
    clauses, params = [], []
    for column in id_columns:
        if column in present:
            clauses.append(f"list_contains(?, trim({quote_identifier(column)}))")
            params.append(list(person.account_ids))
    if anonymous_column and anonymous_column in present and person.anonymous_ids:
        clauses.append(f"list_contains(?, trim({quote_identifier(anonymous_column)}))")
        params.append(list(person.anonymous_ids))
    if email_column and email_column in present and person.emails:
        clauses.append(f"list_contains(?, lower(trim({quote_identifier(email_column)})))")
        params.append(list(person.emails))
    return " or ".join(clauses), params
