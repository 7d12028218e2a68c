"""An incremental dbt build equals a full rebuild of the same inputs, table by table.

A small demo is built once; then its inputs change in every way the incremental models must
notice (docs/scaling.md, "Incremental models"): events appended to a JSON Lines file and dated
after the old as-of date (the as-of date moves on a day), a new order file that also supersedes
an old order, an events file replaced with rows dropped and changed, an order file and an events
file deleted, a new events file whose duplicate event_id now wins over an old one, identity links
that re-stitch old anonymous events (an earlier login by another customer, a first signup of a
never-identified visitor), an erased anonymous id, and new ledger rows and engagement for an old
message. The warehouse is built incrementally, copied, and the copy rebuilt with
`dbt run --full-refresh`; every model's relation then has the same rows in both (row count and the
sum of row hashes, floating columns rounded, whatever the row order)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import duckdb
import pytest

from activation.ledger import ensure_schema
from activation.privacy.erasure import ensure_tables as ensure_privacy_tables
from tests.helpers import write_csv, write_jsonl
from tideline.dbt_manifest import dbt_executable
from tideline.demo.data import generate_demo_data
from tideline.fingerprint import quote_identifier
from tideline.landing.loader import load_landing_zone
from tideline.settings import DBT_PROJECT_DIR

pytestmark = pytest.mark.slow  # generates a demo and builds the dbt project three times

INCREMENTAL_MODELS = {
    "base_events__events",
    "base_commerce__orders",
    "base_engagement__events",
    "int_events_stitched",
}
# ledger keys: an old message (sent before the first build, engaged with after it) and a new one
MESSAGE = str(uuid.UUID(int=1))
NEW_MESSAGE = str(uuid.UUID(int=2))


def dbt_run(warehouse: Path, as_of: str, *extra: str, command: str = "run") -> dict:
    """`dbt run` (or another command) against the DuckDB file, its own target folder; the run
    results. Data tests are not run: the models' values are what is compared."""
    target = warehouse.parent / f"{warehouse.stem}_target"
    env = {**os.environ, "TIDELINE_WAREHOUSE": str(warehouse), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    args = [
        dbt_executable(), command, "--profiles-dir", str(DBT_PROJECT_DIR),
        "--vars", json.dumps({"as_of": as_of}), "--target-path", str(target), *extra,
    ]  # fmt: skip
    done = subprocess.run(args, cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(f"dbt {command} failed:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}")
    return json.loads((target / "run_results.json").read_text())


def load(raw: Path, warehouse: Path) -> None:
    con = duckdb.connect(str(warehouse))
    try:
        load_landing_zone(raw, con)
    finally:
        con.close()


def ledger_rows(warehouse: Path, rows: list[tuple[str, str, str, dt.datetime]]) -> None:
    """(idempotency_key, customer_id, status, recorded_at) into tideline_sync.delivery_log."""
    con = duckdb.connect(str(warehouse))
    try:
        ensure_schema(con)
        con.executemany(
            """insert into tideline_sync.delivery_log (idempotency_key, sync_key, sync_id, customer_id,
                   action, status, reason, channel, campaign, variant, content_version, recorded_at)
               values (?, 'winter:email', 'run-winter', ?, 'upsert', ?, null, 'email', 'winter', 'A', 'v1', ?)""",
            rows,
        )
    finally:
        con.close()


def engagement(event_id: str, event_type: str, customer: str, at: dt.datetime) -> dict:
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "event_id": event_id, "event_type": event_type, "occurred_at": stamp, "received_at": stamp,
        "source": "tracking", "message_key": MESSAGE, "customer_id": customer, "campaign": "winter",
        "variant": "A", "channel": "email", "user_agent": "Mozilla/5.0 (Macintosh)",
    }  # fmt: skip


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def stamp(at: dt.datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def first_build(tmp_path: Path) -> tuple[Path, Path, dt.date, str]:
    """The demo (300 customers, 120 days), an engagement file and a sent message, built as of its
    last day; (raw dir, warehouse, end date, the customer of the message)."""
    raw = tmp_path / "raw"
    end = generate_demo_data(raw, customers=300, days=120, seed=11).end_date
    warehouse = tmp_path / "incremental.duckdb"
    sent = dt.datetime.combine(end - dt.timedelta(days=3), dt.time(9))
    customer = "cus_0000001"
    write_jsonl(
        raw / "engagement/events/receiver.jsonl",
        [engagement("eng-1", "opened", customer, sent + dt.timedelta(hours=2))],
    )
    load(raw, warehouse)
    ledger_rows(warehouse, [(MESSAGE, customer, "in_flight", sent), (MESSAGE, customer, "sent", sent)])
    dbt_run(warehouse, end.isoformat(), "--exclude-resource-type", "test", "unit_test", command="build")
    return raw, warehouse, end, customer


def change_inputs(raw: Path, warehouse: Path, end: dt.date, customer: str) -> dict:
    """Every kind of change the incremental models must follow; what the test checks afterwards."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        # a visitor stitched to a customer, and another customer who will claim the visitor earlier
        anon, owner = con.execute(
            """select anonymous_id, customer_id from intermediate.int_events_stitched
               where is_stitched group by all order by count(*) desc, anonymous_id limit 1"""
        ).fetchone()
        other = con.execute(
            "select account_id from intermediate.int_accounts_resolved where customer_id <> ? order by 1 limit 1",
            [owner],
        ).fetchone()[0]
        never = con.execute(
            """select anonymous_id from intermediate.int_events_stitched where customer_id is null
               and anonymous_id is not null group by 1 order by count(*) desc, 1 limit 1"""
        ).fetchone()[0]
        erased = con.execute(
            """select anonymous_id from intermediate.int_events_stitched where customer_id is null
               and anonymous_id not in (?) group by 1 order by count(*) desc, 1 limit 1""",
            [never],
        ).fetchone()[0]
        order_files = [
            r[0]
            for r in con.execute(
                "select _file from landing.files where entity = 'commerce_orders' order by 1"
            ).fetchall()
        ]
        old_order = con.execute(
            "select order_id from staging.stg_commerce__orders order by order_id limit 1"
        ).fetchone()[0]
    finally:
        con.close()
    event_files = sorted(p for p in (raw / "events").rglob("part-*.jsonl"))
    appended, replaced, deleted = event_files[-1], event_files[-2], event_files[0]
    # events appended (dated the new as-of day) to the latest file
    new_day = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(12))
    template = read_jsonl(appended)[:20]
    with appended.open("a") as fh:
        for n, row in enumerate(template):
            fh.write(json.dumps({**row, "event_id": f"evt_new_{n}", "occurred_at": stamp(new_day)}) + "\n")
    # an events file replaced: every 7th line dropped, the utm_source of every 5th changed
    rows = read_jsonl(replaced)
    kept = [{**r, "utm_source": "replaced"} if i % 5 == 0 else r for i, r in enumerate(rows) if i % 7 != 3]
    write_jsonl(replaced, kept)
    # an events file deleted, an order file deleted
    survivor = read_jsonl(deleted)[0]
    deleted.unlink()
    (raw / order_files[0]).unlink()
    # a new events file that sorts first: a duplicate event_id that now wins, and identity links
    late = raw / "events/month=2000-01/late.jsonl"
    early = dt.datetime.combine(end - dt.timedelta(days=400), dt.time(8))  # before the visitor's first link
    duplicate = {**read_jsonl(event_files[1])[0], "utm_source": "wins_now"}
    write_jsonl(
        late,
        [
            duplicate,
            {"event_id": "evt_claim", "event_type": "login", "occurred_at": stamp(early),
             "anonymous_id": anon, "customer_id": other, "session_id": "s_claim"},
            {"event_id": "evt_signup", "event_type": "signup", "occurred_at": stamp(new_day),
             "anonymous_id": never, "customer_id": other, "session_id": "s_signup"},
            {**survivor, "event_id": "evt_survivor"},
        ],
    )  # fmt: skip
    # a new order file: new orders and a later version of an old order (the latest file wins)
    write_csv(
        raw / "commerce/orders/month=2099-01/late.csv",
        [
            {"order_id": "ord_new_1", "customer_id": other, "ordered_at": stamp(new_day), "amount": "42.5"},
            {"order_id": old_order, "customer_id": other, "ordered_at": stamp(new_day), "amount": "7.25"},
        ],
    )
    # engagement for the old message, a new message in the ledger, an erased visitor
    with (raw / "engagement/events/receiver.jsonl").open("a") as fh:
        fh.write(json.dumps(engagement("eng-2", "clicked", customer, new_day)) + "\n")
    ledger_rows(warehouse, [(NEW_MESSAGE, other, "sent", new_day)])
    con = duckdb.connect(str(warehouse))
    try:
        ensure_privacy_tables(con)
        con.execute(
            "insert into tideline_sync.erased_identities values ('req-1', 'anonymous_id', ?)", [erased]
        )
    finally:
        con.close()
    return {
        "anon": anon,
        "owner": owner,
        "other": other,
        "never": never,
        "erased": erased,
        "old_order": old_order,
    }


def model_relations(run_results: dict, warehouse: Path) -> list[tuple[str, str]]:
    """(schema, name) of every model the run built."""
    models = [
        r["unique_id"].split(".")[-1] for r in run_results["results"] if r["unique_id"].startswith("model.")
    ]
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        found = con.execute(
            "select table_schema, table_name from information_schema.tables where list_contains(?, table_name)",
            [models],
        ).fetchall()
    finally:
        con.close()
    assert len(found) == len(models), (
        f"models not found once each: {sorted(set(models) - {t for _, t in found})}"
    )
    return sorted(found)


def checksum(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> tuple[int, int]:
    """(rows, sum of row hashes) over every column in name order, floating columns rounded."""
    columns = con.execute(
        """select column_name, data_type from information_schema.columns
           where table_schema = ? and table_name = ? order by column_name""",
        [schema, table],
    ).fetchall()
    values = [
        f"round({quote_identifier(name)}, 6)"
        if kind in ("DOUBLE", "FLOAT", "REAL")
        else quote_identifier(name)
        for name, kind in columns
    ]
    relation = f"{quote_identifier(schema)}.{quote_identifier(table)}"
    row = con.execute(
        f"select count(*), coalesce(sum(cast(hash({', '.join(values)}) as hugeint)), 0) from {relation}"
    ).fetchone()
    return int(row[0]), int(row[1])


def checksums(warehouse: Path, relations: list[tuple[str, str]]) -> dict[str, tuple[int, int]]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return {f"{schema}.{table}": checksum(con, schema, table) for schema, table in relations}
    finally:
        con.close()


def test_an_incremental_build_equals_a_full_rebuild(tmp_path: Path) -> None:
    raw, warehouse, end, customer = first_build(tmp_path)
    changed = change_inputs(raw, warehouse, end, customer)
    load(raw, warehouse)
    as_of = (end + dt.timedelta(days=1)).isoformat()
    incremental = dbt_run(warehouse, as_of)
    full = tmp_path / "full.duckdb"
    shutil.copy(warehouse, full)
    dbt_run(full, as_of, "--full-refresh")

    # the build was an incremental one: the incremental models selected only what they lacked
    relations = model_relations(incremental, warehouse)
    compiled = {
        r["unique_id"].split(".")[-1]: r["compiled_code"]
        for r in incremental["results"]
        if r["unique_id"].split(".")[-1] in INCREMENTAL_MODELS
    }
    assert set(compiled) == INCREMENTAL_MODELS
    assert all("not exists" in sql and "as built" in sql for sql in compiled.values()), compiled

    # table by table, the incremental build equals the full rebuild
    totals, rebuilt = checksums(warehouse, relations), checksums(full, relations)
    differ = {name: (totals[name], rebuilt[name]) for name in totals if totals[name] != rebuilt[name]}
    assert not differ, f"incremental != full rebuild (rows, hash sum): {differ}"

    # the changes reached the models (else the comparison above would prove little)
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        restitched = con.execute(
            "select distinct customer_id from intermediate.int_events_stitched where anonymous_id = ? and is_stitched",
            [changed["anon"]],
        ).fetchall()
        signed_up = con.execute(
            "select count(*) from intermediate.int_events_stitched where anonymous_id = ? and customer_id is null",
            [changed["never"]],
        ).fetchone()[0]
        erased = con.execute(
            "select count(*) from intermediate.int_events_stitched where anonymous_id = ?",
            [changed["erased"]],
        ).fetchone()[0]
        clicks = con.execute(
            "select count(*) from marts.fct_message_events where message_key = ? and event_type = 'clicked'",
            [MESSAGE],
        ).fetchone()[0]
        winner = con.execute(
            "select utm_source from staging.stg_events__events where utm_source = 'wins_now'"
        ).fetchall()
    finally:
        con.close()
    resolved_other = duckdb.connect(str(warehouse), read_only=True)
    try:
        other = resolved_other.execute(
            "select customer_id from intermediate.int_accounts_resolved where account_id = ?",
            [changed["other"]],
        ).fetchone()[0]
    finally:
        resolved_other.close()
    assert restitched == [(other,)] and other != changed["owner"]
    assert signed_up == 0 and erased == 0 and clicks == 1 and winner == [("wins_now",)]
