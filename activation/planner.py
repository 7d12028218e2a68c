"""The sync planner: what to send for one segment × destination, computed in the warehouse.

Builds temp tables on the warehouse connection, so a segment of any size is
planned by the database, not in Python memory:

    _diff      one row per record the diff found: action (upsert, delete, send), change
               (added, changed, removed, message), field_hash, fields_json, idempotency_key
    _rejects   rows with a null or duplicate key (rejected with a reason, never sent)
    _latest    the latest ledger status, reason, not_before and attempt count of the candidates' keys
    _cand      view: _diff without rejected keys, with their ledger status, reason and attempts
    _plan      view: the candidates still to deliver (their key is not final in the ledger)

The diff reads the segment once: a 64-bit hash of the mapped columns (and of the mapping
itself, so renaming a destination field resyncs) is compared with the hash last
delivered (synced_state). Only rows that differ are turned into JSON and keyed, so a
rerun where 1% of a large segment changed does 1% of the work after the scan.
(The hash is DuckDB's `hash()`: if a DuckDB upgrade changed it, the next run would see
every row as changed and resend it once; upserts are idempotent and message keys do
not use it.)

Modes:
    upsert   added and changed rows are upserted; rows gone from the segment are left alone
    mirror   as upsert, and rows gone from the segment are deleted (the delete carries the
             fields last delivered, kept in synced_state, so e.g. an audience can remove
             the customer's hashed email)
    insert   only keys never delivered before
    message  one message per customer per campaign content version (the ledger is the state)

The idempotency key is the first 128 bits of sha256(destination|segment|customer|version),
stored as a UUID (16 bytes: the ledger's writes and joins stay cheap) and sent in its
canonical text form (8-4-4-4-12 hex digits), where version is
the field hash (upsert, insert, mirror), `delete:<hash>` for deletes, each followed by
`:g<generation>` once the customer has a generation (the deliveries folded so far: a change
back to fields delivered before is a new key), or `<campaign>:<content version>` for messages
(`<campaign>:<content version>:<row key>` for a keyed binding: a journey's entry id). A key already delivered (sent, dead-lettered, or unknown after
a crash) is never planned again. Candidates whose key is already `sent` but whose
state was not folded (the run that sent them died first) are folded by the engine.

Erased customers (activation.privacy: tideline_sync.erased_identities) are left out of the segment
the moment their erasure is recorded, before dbt rebuilds it: message syncs plan nothing for them,
and every mode that keeps state (upsert, insert, mirror) plans a delete for those it delivered to,
so the destination removes them on its next sync.
"""

from __future__ import annotations

from typing import Any

import duckdb

from activation.config import SyncBinding
from activation.ledger import FINAL, SCHEMA
from activation.privacy.erasure import erased_customers_sql
from activation.warehouse import execute, literal, quote_identifier, quote_relation


def params(binding: SyncBinding) -> dict[str, Any]:
    """The binding's values the plan's statements bind (names, campaign, versions: config text,
    never put into the SQL itself)."""
    return {
        "destination": binding.destination,
        "segment": binding.segment,
        "sync_key": binding.sync_key,
        "signature": "|".join(f"{dest}={col}" for dest, col in sorted(binding.fields.items())),
        "message_version": f"{binding.campaign}:{binding.content_version}",
        "delivery_action": binding.delivery_action,
    }


def field_hash_sql(binding: SyncBinding, prefix: str = "") -> str:
    """The change-detection hash of a row: the mapping (names, bound as $signature) and the mapped values."""
    columns = ", ".join(f"{prefix}{quote_identifier(col)}" for col in binding.fields.values())
    return f"hash($signature, {columns})" if columns else "hash($signature)"


def _aliases(binding: SyncBinding) -> dict[str, str]:
    """Segment column -> its name inside the plan (_f0, _f1, ...), so a mapped column may be
    called anything, customer_id included."""
    return {col: f"_f{i}" for i, col in enumerate(dict.fromkeys(binding.fields.values()))}


def _fields_json_sql(binding: SyncBinding, prefix: str = "s.") -> str:
    alias = _aliases(binding)
    pack = ", ".join(
        f"{quote_identifier(dest)} := {prefix}{alias[col]}" for dest, col in binding.fields.items()
    )
    return f"cast(to_json(struct_pack({pack})) as varchar)" if pack else "'{}'"


def _key(customer: str, version: str) -> str:
    return (
        f"cast(substr(sha256(concat_ws('|', $destination, $segment, {customer}, {version})), 1, 32) as uuid)"
    )


def row_message_key_sql(customer: str, row_key: str) -> str:
    """The idempotency key of a keyed binding's message (journeys): `customer` and `row_key` are
    SQL expressions from code; binds $destination, $segment and $message_version (`params`)."""
    return _key(customer, f"$message_version || ':' || cast({row_key} as varchar)")


def plan(con: duckdb.DuckDBPyConnection, binding: SyncBinding, key_column: str = "customer_id") -> None:
    """Create _rejects, _cand and the _plan view for the binding."""
    key = f"cast({quote_identifier(key_column)} as varchar)"
    # null, empty or only spaces; trim() runs only on the rare key that starts with a space
    blank = "(customer_id is null or customer_id = '' or (starts_with(customer_id, ' ') and trim(customer_id) = ''))"
    columns = ", ".join(f"{quote_identifier(col)} as {name}" for col, name in _aliases(binding).items())
    relation = quote_relation(binding.relation)
    values = params(binding)
    # erased customers: out of the segment at once; a delete for those a destination holds
    erased = erased_customers_sql(con)
    live = f"where {key} is null or {key} not in ({erased})" if erased else ""
    erased_in_state = f" or (s.customer_id is null and st.customer_id in ({erased}))" if erased else ""
    if binding.mode == "message":
        # a keyed binding (journeys): the row's key column is part of the version, so each entry
        # of a journey gets its own message at each step
        row_key, message_key = "", _key("s.customer_id", "$message_version")
        if binding.row_key is not None:
            row_key = f", cast({quote_identifier(binding.row_key)} as varchar) as _row_key"
            message_key = row_message_key_sql("s.customer_id", "s._row_key")
        ctes = f"""seg as (select {key} as customer_id, {field_hash_sql(binding)} as field_hash
                                  {", " + columns if columns else ""}{row_key}
                           from {relation} {live}),
            diff as materialized (
                select s.customer_id, $delivery_action as action, 'message' as change, s.field_hash,
                       {_fields_json_sql(binding)} as fields_json,
                       cast(null as integer) as generation,
                       {message_key} as idempotency_key
                from seg as s)"""
    else:
        # A full join of (key, hash) pairs with the synced state finds added, changed and removed;
        # only the rows that differ are then joined back to the segment for their fields, so the
        # join over the whole segment carries no field values. Null and duplicate keys are then
        # looked for among the candidates only (see _rejects_among_candidates).
        keep = {
            "upsert": "s.customer_id is not null and (st.customer_id is null or st.field_hash <> s.field_hash)",
            "insert": "s.customer_id is not null and st.customer_id is null",
            "mirror": "s.customer_id is null or st.customer_id is null or st.field_hash <> s.field_hash",
        }[binding.mode]
        if binding.mode != "mirror":  # mirror deletes every leaver already
            keep = f"({keep}){erased_in_state}"
        gone = "c.gone"
        # the generation the key is made with: the state's, or for a customer coming back after a
        # delivered delete (mirror), the one the delete left; none yet (null) keeps the key as it was
        if binding.mode == "mirror":
            removed = f"""removed as (select customer_id, generation from {SCHEMA}.removed_state
                        where sync_key = $sync_key),"""
            generation = "case when c.new then r.generation else c.generation end"
            join_removed = "left join removed as r on c.new and r.customer_id = c.customer_id"
        else:
            removed, generation, join_removed = "", "c.generation", ""
        version = (
            f"case when {gone} then 'delete:' else '' end || cast(c.field_hash as varchar)"
            f" || coalesce(':g' || cast({generation} as varchar), '')"
        )
        ctes = f"""seg as (select {key} as customer_id, {field_hash_sql(binding)} as field_hash
                           from {relation} {live}),
            state as (select customer_id, field_hash, fields_json, generation from {SCHEMA}.synced_state
                      where sync_key = $sync_key),
            {removed}
            changes as materialized (
                select coalesce(s.customer_id, st.customer_id) as customer_id, s.customer_id is null as gone,
                       st.customer_id is null as new, coalesce(s.field_hash, st.field_hash) as field_hash,
                       st.fields_json as state_fields, st.generation
                from seg as s full join state as st on s.customer_id = st.customer_id
                where {keep}),
            fields as (select {key} as customer_id{", " + columns if columns else ""}
                       from {relation}),
            diff as materialized (
                select c.customer_id,
                       case when {gone} then 'delete' else 'upsert' end as action,
                       case when {gone} then 'removed' when c.new then 'added' else 'changed' end as change,
                       c.field_hash,
                       case when {gone} then coalesce(c.state_fields, '{{}}') else {_fields_json_sql(binding, "s.")} end
                           as fields_json,
                       {generation} as generation,
                       {_key("c.customer_id", version)} as idempotency_key
                from changes as c left join fields as s on s.customer_id = c.customer_id
                {join_removed})"""
    execute(con, f"create or replace temp table _diff as with {ctes} select * from diff", values)
    # rejected keys stay in _diff and are left out by the _cand view
    if binding.mode == "message":  # every row is a candidate: the whole segment is checked
        _rejects_over_segment(con, binding, key, blank)
    else:
        _rejects_among_candidates(con, binding, key, blank)
    # the latest ledger event of each candidate key: the sync's events of the candidates' keys
    # only (a semi-join on _diff's keys), reduced by a streaming group-by that DuckDB can spill,
    # never a window over the log, whose size grows with every run
    execute(
        con,
        f"""create or replace temp table _latest as
            select idempotency_key, arg_max(status, seq) as status, arg_max(attempt, seq) as attempt,
                   arg_max(reason, seq) as reason, arg_max(not_before, seq) as not_before
            from {SCHEMA}.delivery_log
            where sync_key = $sync_key and idempotency_key in (select idempotency_key from _diff)
            group by idempotency_key""",
        values,
    )
    # a view, not a copy: at a full sync _diff holds the whole segment's JSON
    con.execute(
        """create or replace temp view _cand as
           select d.*, l.status as ledger_status, l.reason as ledger_reason, l.not_before as ledger_not_before,
                  coalesce(l.attempt, 0) as attempts
           from _diff as d left join _latest as l on d.idempotency_key = l.idempotency_key
           where d.customer_id is not null  -- x NOT IN (empty set) is true even for a null x
             and d.customer_id not in (select customer_id from _rejects where customer_id is not null)"""
    )
    final = ", ".join(literal(s) for s in FINAL)  # a view cannot bind: constants of this module
    con.execute(
        f"""create or replace temp view _plan as
            select * from _cand
            where ledger_status is null or ledger_status not in ({final})"""
    )


def _rejects_over_segment(con: duckdb.DuckDBPyConnection, binding: SyncBinding, key: str, blank: str) -> None:
    """_rejects from the whole segment: every null or blank key, every row of a duplicate key.
    Duplicates are found by grouping a 64-bit hash of the key (cheaper than grouping strings),
    then confirmed on the key itself, so a hash collision never rejects a row."""
    con.execute(
        f"""create or replace temp table _rejects as
            with keys as (select {key} as customer_id from {quote_relation(binding.relation)}),
            suspects as (
                select hash(customer_id) as h from keys where customer_id is not null
                group by 1 having count(*) > 1
            ),
            duplicates as (
                select customer_id from keys where hash(customer_id) in (select h from suspects)
                group by 1 having count(*) > 1
            )
            select customer_id, case when {blank} then 'null_key' else 'duplicate_key' end as reason
            from keys
            where {blank} or customer_id in (select customer_id from duplicates)"""
    )


def _rejects_among_candidates(
    con: duckdb.DuckDBPyConnection, binding: SyncBinding, key: str, blank: str
) -> None:
    """_rejects for a diff: only keys the diff proposes to send can do harm, so only they are
    checked, in one pass over the segment's keys. A null or blank key is never in the synced
    state, so it is always a candidate; a duplicate key whose rows differ always has a row that
    differs from the state, so it is too. What is not seen: an exact copy of a row already
    synced, which sends nothing (the dbt segment's own unique test reports it)."""
    con.execute(
        f"""create or replace temp table _rejects as
            with hits as (
                select {key} as customer_id from {quote_relation(binding.relation)}
                where {key} is null or {key} in (select customer_id from _diff where action <> 'delete')
            ),
            duplicates as (select customer_id from hits where customer_id is not null group by 1 having count(*) > 1)
            select customer_id, case when {blank} then 'null_key' else 'duplicate_key' end as reason
            from hits
            where {blank} or customer_id in (select customer_id from duplicates)"""
    )


def counts(con: duckdb.DuckDBPyConnection, binding: SyncBinding) -> dict[str, int]:
    rows = dict(con.execute("select change, count(*) from _plan group by 1").fetchall())
    rejected = con.execute("select count(*) from _rejects").fetchone()[0]
    segment_rows = con.execute(f"select count(*) from {quote_relation(binding.relation)}").fetchone()[0]
    return {
        "segment_rows": int(segment_rows),
        "rejected_keys": int(rejected),
        "added": int(rows.get("added", 0)),
        "changed": int(rows.get("changed", 0)),
        "removed": int(rows.get("removed", 0)),
        "planned": int(sum(rows.values())),
    }
