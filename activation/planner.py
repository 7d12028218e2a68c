"""The sync planner: what to send for one segment × destination, computed in the warehouse.

Builds temp tables on the warehouse connection, so a segment of any size is
planned by the database, not in Python memory:

    _seg       the segment's rows: customer_id plus the mapped fields as JSON
    _rejects   rows with a null or duplicate key (rejected with a reason, never sent)
    _plan      one row per record to consider: action (upsert, delete, send), change
               (added, changed, removed, message), field_hash, idempotency_key, and the
               latest ledger status and attempt count for that key

Modes:
    upsert   added and changed rows are upserted; rows gone from the segment are left alone
    mirror   as upsert, and rows gone from the segment are deleted
    insert   only keys never delivered before
    message  one message per customer per campaign content version (the ledger is the state)

The idempotency key is sha256(destination|segment|customer|version), where version is
the field hash (upsert, insert, mirror), `delete:<hash>` for deletes, or
`<campaign>:<content version>` for messages. A key already delivered (sent, dead-lettered, or unknown after
a crash) is never planned again.
"""

from __future__ import annotations

import duckdb

from activation.config import SyncBinding
from activation.ledger import FINAL, SCHEMA


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def load_segment(
    con: duckdb.DuckDBPyConnection, binding: SyncBinding, key_column: str = "customer_id"
) -> None:
    pack = ", ".join(f"{_q(dest)} := {_q(col)}" for dest, col in binding.fields.items())
    con.execute(
        f"""create or replace temp table _seg_raw as
            select cast({_q(key_column)} as varchar) as customer_id, to_json(struct_pack({pack})) as fields_json
            from {binding.relation}"""
    )
    con.execute(
        """create or replace temp table _rejects as
           select customer_id, case when customer_id is null or trim(customer_id) = '' then 'null_key'
                                    else 'duplicate_key' end as reason
           from _seg_raw
           where customer_id is null or trim(customer_id) = ''
              or customer_id in (select customer_id from _seg_raw group by 1 having count(*) > 1)"""
    )
    con.execute(
        """create or replace temp table _seg as
           select customer_id, cast(fields_json as varchar) as fields_json, md5(cast(fields_json as varchar)) as field_hash
           from _seg_raw
           where customer_id is not null and trim(customer_id) <> ''
             and customer_id not in (select customer_id from _rejects where customer_id is not null)"""
    )


def _key(binding: SyncBinding, customer: str, version: str) -> str:
    parts = ", ".join([_lit(binding.destination), _lit(binding.segment), customer, version])
    return f"sha256(concat_ws('|', {parts}))"


def build_plan(con: duckdb.DuckDBPyConnection, binding: SyncBinding) -> None:
    """Create _plan for the binding (after load_segment)."""
    sync_key = _lit(binding.sync_key)
    if binding.mode == "message":
        candidates = f"""
            select customer_id, 'send' as action, 'message' as change, field_hash, fields_json,
                   {_key(binding, "customer_id", _lit(f"{binding.campaign}:{binding.content_version}"))}
                       as idempotency_key
            from _seg"""
    else:
        state = f"(select customer_id, field_hash from {SCHEMA}.synced_state where sync_key = {sync_key})"
        parts = [
            f"""select s.customer_id, 'upsert' as action,
                       case when st.customer_id is null then 'added' else 'changed' end as change,
                       s.field_hash, s.fields_json, {_key(binding, "s.customer_id", "s.field_hash")} as idempotency_key
                from _seg as s left join {state} as st on s.customer_id = st.customer_id
                where st.customer_id is null {"" if binding.mode == "insert" else "or st.field_hash <> s.field_hash"}"""
        ]
        if binding.mode == "mirror":
            parts.append(
                f"""select st.customer_id, 'delete', 'removed', st.field_hash, '{{}}',
                           {_key(binding, "st.customer_id", "'delete:' || st.field_hash")}
                    from {state} as st
                    where st.customer_id not in (select customer_id from _seg)"""
            )
        candidates = " union all ".join(parts)
    final = ", ".join(_lit(s) for s in FINAL)
    con.execute(
        f"""create or replace temp table _plan as
            with candidates as ({candidates}),
            ledger as (
                select idempotency_key, status, attempt
                from {SCHEMA}.delivery_ledger where sync_key = {sync_key}
            )
            select c.*, l.status as ledger_status, coalesce(l.attempt, 0) as attempts
            from candidates as c left join ledger as l on c.idempotency_key = l.idempotency_key
            where l.status is null or l.status not in ({final})"""
    )


def counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    rows = dict(con.execute("select change, count(*) from _plan group by 1").fetchall())
    return {
        "segment_rows": con.execute("select count(*) from _seg_raw").fetchone()[0],
        "rejected_keys": con.execute("select count(*) from _rejects").fetchone()[0],
        "added": int(rows.get("added", 0)),
        "changed": int(rows.get("changed", 0)),
        "removed": int(rows.get("removed", 0)),
        "planned": int(sum(rows.values())),
    }
