"""An access request: everything the warehouse holds about one person, as one JSON document.

    document = export_document(con, person)
    path = write_export(document, directory)           # mode 0600, or to a path the caller names

The document:

    {"customer_id": ..., "exported_at": ..., "identities": {...},
     "sections": {"profile": [{"relation": "marts.dim_customers", "rows": [...]}, ...],
                  "orders": [...], ...}}

Each section lists the relations it read, with the person's rows, or `"absent": true` when a
relation does not exist in this warehouse yet (no sync ran, no journey ticked, the marts are not
built): never an error. SECTIONS says which relation feeds which section and how its rows name
the person (a source id, an anonymous id, an order of theirs). The ml section reads every table
of schema ml with a customer_id column, so a new score table is exported without a change here.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from activation.privacy.identity import Person
from activation.warehouse import quote_identifier, quote_relation, table_exists

# how a relation's rows name the person: `ids` (column in the person's source ids and resolved id),
# `ids_or_anonymous` (customer_id in the ids or anonymous_id in their anonymous ids), `orders`
# (order_id among the person's orders), `accounts` (account_id in the ids)
IDS, IDS_OR_ANONYMOUS, ORDERS, ACCOUNTS = "ids", "ids_or_anonymous", "orders", "accounts"


@dataclass(frozen=True)
class Source:
    relation: str  # schema.table
    match: str  # one of the four above


SECTIONS: dict[str, tuple[Source, ...]] = {
    "profile": (Source("marts.dim_customers", IDS), Source("marts.customer_rfm", IDS)),
    "identities": (
        Source("marts.customer_id_map", IDS),
        Source("intermediate.int_account_keys_collected", ACCOUNTS),
        Source("intermediate.int_anonymous_ids_stitched", IDS),
        Source("staging.stg_crm__contacts", IDS),
    ),
    "consents": (
        Source("staging.stg_crm__consents", IDS),
        Source("tideline_sync.consent_revocations", IDS),
        Source("tideline_sync.suppressions", IDS),
    ),
    "tags": (Source("marts.customer_tags", IDS),),
    "lifecycle": (Source("marts.customer_lifecycle", IDS), Source("marts.customer_lifecycle_history", IDS)),
    "orders": (Source("staging.stg_commerce__orders", IDS),),
    "order_items": (Source("staging.stg_commerce__order_items", ORDERS),),
    "events": (Source("staging.stg_events__events", IDS_OR_ANONYMOUS),),
    "messages": (Source("tideline_sync.delivery_log", IDS), Source("marts.fct_messages", IDS)),
    "engagement": (Source("marts.fct_message_events", IDS),),
    "journeys": (
        Source("tideline_journeys.entries", IDS),
        Source("tideline_journeys.steps", IDS),
        Source("tideline_journeys.tag_changes", IDS),
    ),
    "audiences": (Source("marts.audience_membership_history", IDS),),
    "sales": (
        Source("marts.customer_owners", IDS),
        Source("marts.lead_crm_stages", IDS),
        Source("marts.lead_scores", IDS),
    ),
    "destinations": (Source("tideline_sync.synced_state", IDS),),
    "erasure": (Source("tideline_sync.erasure_requests", IDS),),
}


def export_document(
    con: duckdb.DuckDBPyConnection, person: Person, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Every section's relations with the person's rows (or absent)."""
    sections = {
        name: [_read(con, source, person) for source in sources] for name, sources in SECTIONS.items()
    }
    sections["scores"] = [_read(con, Source(relation, IDS), person) for relation in _ml_tables(con)]
    return {
        "customer_id": person.customer_id,
        "exported_at": (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None).isoformat(timespec="seconds"),
        "identities": {
            "customer_id": person.customer_id,
            "source_ids": list(person.account_ids),
            "anonymous_ids": list(person.anonymous_ids),
            "emails": list(person.emails),
            "phones": list(person.phones),
            "erased_by_request": person.erased_by,
        },
        "sections": sections,
    }


def row_counts(document: dict[str, Any]) -> dict[str, int]:
    """Rows per section (what the CLI prints instead of the data)."""
    return {
        name: sum(len(part.get("rows", [])) for part in parts) for name, parts in document["sections"].items()
    }


def absent_relations(document: dict[str, Any]) -> list[str]:
    return [
        part["relation"] for parts in document["sections"].values() for part in parts if part.get("absent")
    ]


def write_export(document: dict[str, Any], path: Path) -> Path:
    """Write the document to `path` (a new file, mode 0600; its folder is created mode 0700)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = json.dumps(document, indent=2, default=_jsonable, ensure_ascii=False).encode() + b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT: set it
        os.write(fd, data)
    finally:
        os.close(fd)
    return path


def _ml_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(
        """select distinct table_name from information_schema.columns
           where table_schema = 'ml' and lower(column_name) = 'customer_id' order by 1"""
    ).fetchall()
    return [f"ml.{r[0]}" for r in rows]


def _read(con: duckdb.DuckDBPyConnection, source: Source, person: Person) -> dict[str, Any]:
    schema, _, table = source.relation.partition(".")
    if not table_exists(con, schema, table):
        return {"relation": source.relation, "absent": True}
    where, params = _where(con, source, person)
    cur = con.execute(f"select * from {quote_relation(source.relation)} where {where}", params)
    names = [d[0] for d in cur.description]
    return {
        "relation": source.relation,
        "rows": [dict(zip(names, row, strict=True)) for row in cur.fetchall()],
    }


def _where(con: duckdb.DuckDBPyConnection, source: Source, person: Person) -> tuple[str, list]:
    ids = list(person.account_ids)
    customer = quote_identifier("customer_id")
    if source.match == ACCOUNTS:
        return "list_contains(?, account_id)", [ids]
    if source.match == ORDERS:
        if not table_exists(con, "staging", "stg_commerce__orders"):
            return "false", []
        return (
            "order_id in (select order_id from staging.stg_commerce__orders where list_contains(?, customer_id))",
            [ids],
        )
    if source.match == IDS_OR_ANONYMOUS:
        return (
            f"list_contains(?, cast({customer} as varchar)) or list_contains(?, anonymous_id)",
            [ids, list(person.anonymous_ids)],
        )
    return f"list_contains(?, cast({customer} as varchar))", [ids]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)  # UUIDs, intervals
