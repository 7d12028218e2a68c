"""GDPR access and erasure end to end, on a small warehouse built by the pipeline's own loader and
`dbt build`, with real sinks: an HTTP server for the SMS webhook, the audience-files destination
writing files, and the Postgres table destination against a real PostgreSQL server
(tests/integration/postgres.py; its test skips without the binaries).

The landing zone plants Ada: CRM contact c1 (ada@example.com, 07700 900123 in GB), a guest
checkout g-ada whose order carries " ADA@Example.com " (merged into her by the email), an
anonymous id anon-ada stitched to her by a signup, consents, three orders with four lines, and,
after a first sync, a click on her SMS. Four other customers are there too.

One build per module (the `world` fixture), in the order a real request goes:
build → sync (SMS message, audience mirror, Postgres mirror) → engagement lands → rebuild →
`tideline customer export --email` → `tideline customer erase --customer-id g-ada` → sync again
(before any rebuild) → rebuild. The tests then read what each step left.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import io
import json
import stat
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pytest

from activation.config import PolicyConfig, SyncBinding
from activation.destinations.audience_files import AudienceFilesDestination
from activation.destinations.postgres_table import PostgresTableDestination
from activation.destinations.webhook import WebhookDestination
from activation.engine import SyncEngine
from tests.helpers import build_warehouse, write_csv, write_jsonl
from tests.integration.postgres import postgres_dsn  # noqa: F401  (the session's PostgreSQL server)
from tideline import cli
from tideline.demo.sinks.http_sink import HttpSink

pytestmark = pytest.mark.slow  # three dbt builds of a small warehouse, shared by the module

AS_OF = "2026-03-10"
SENT_AT = dt.datetime(2026, 3, 9, 10, 0)
AFTER_ERASURE = dt.datetime(2026, 3, 10, 10, 0)
SECRET = "privacy-test-webhook-secret"
ADA_IDS = ("c1", "g-ada", "anon-ada")
ADA_EMAIL, ADA_PHONE = "ada@example.com", "+447700900123"
OTHERS = ("c2", "c3", "c4", "c5")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def write_landing(raw: Path) -> None:
    contacts = [
        {"customer_id": "c1", "email": ADA_EMAIL, "phone": "07700 900123", "first_name": "Ada",
         "last_name": "Lovelace", "country": "GB", "created_at": "2026-01-01"},
    ] + [
        {"customer_id": c, "email": f"{c}@shop.example", "phone": f"0770090001{i}", "first_name": "Someone",
         "last_name": "Else", "country": "GB", "created_at": "2026-01-02"}
        for i, c in enumerate(OTHERS)
    ]  # fmt: skip
    write_csv(raw / "crm/contacts/part-1.csv", contacts)
    consents = [
        {"customer_id": c, "channel": ch, "status": "granted", "consented_at": "2026-01-05"}
        for c in ("c1", *OTHERS)
        for ch in ("email", "sms")
    ]
    write_csv(raw / "crm/consents/part-1.csv", consents)
    orders = [
        {"order_id": "o1", "customer_id": "c1", "ordered_at": "2026-01-10T10:00:00Z", "amount": "40.00"},
        {"order_id": "o2", "customer_id": "c1", "ordered_at": "2026-02-15T10:00:00Z", "amount": "60.00"},
        {"order_id": "o3", "customer_id": "g-ada", "ordered_at": "2026-03-01T10:00:00Z", "amount": "25.00",
         "email": " ADA@Example.com "},
    ] + [
        {"order_id": f"o{10 + i}", "customer_id": c, "ordered_at": "2026-02-01T10:00:00Z", "amount": "30.00"}
        for i, c in enumerate(OTHERS)
    ]  # fmt: skip
    write_csv(
        raw / "commerce/orders/part-1.csv",
        orders,
        ["order_id", "customer_id", "ordered_at", "amount", "email"],
    )
    items = [
        {"order_id": o, "product_id": "p1", "quantity": "1", "unit_price": "20"}
        for o in ("o1", "o1", "o2", "o3")
    ]
    items += [
        {"order_id": f"o{10 + i}", "product_id": "p2", "quantity": "1", "unit_price": "30"} for i in range(4)
    ]
    write_csv(raw / "commerce/order_items/part-1.csv", items)
    events = [
        {"event_id": "e1", "event_type": "page_view", "occurred_at": "2026-03-01T09:00:00Z", "anonymous_id": "anon-ada"},
        {"event_id": "e2", "event_type": "signup", "occurred_at": "2026-03-01T09:05:00Z", "anonymous_id": "anon-ada",
         "customer_id": "c1"},
        {"event_id": "e3", "event_type": "page_view", "occurred_at": "2026-03-02T09:00:00Z", "customer_id": "c2"},
        {"event_id": "e4", "event_type": "page_view", "occurred_at": "2026-03-02T09:00:00Z", "anonymous_id": "anon-x"},
    ]  # fmt: skip
    write_jsonl(raw / "events/part-1.jsonl", events)


@dataclass
class World:
    raw: Path
    warehouse: Path
    home: Path
    sink: HttpSink
    audiences: Path
    customer_id: str = ""  # Ada's resolved id
    dsn: str | None = None
    pg_table: str = ""
    pg_before: set[str] = field(default_factory=set)
    pg_after: set[str] = field(default_factory=set)
    export_out: str = ""
    export_path: Path | None = None
    document: dict[str, Any] = field(default_factory=dict)
    erase_out: str = ""
    erase_code: int = -1
    sms_after: Any = None
    audience_after: Any = None
    pg_result: Any = None
    tideline_sync_text: str = field(default="", repr=False)


def _cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(list(argv))
    return code, out.getvalue()


def _bindings() -> dict[str, SyncBinding]:
    relation = "segments.gdpr_audience"
    return {
        "sms": SyncBinding("gdpr_audience", relation, "sms", "message", "sms", {"phone": "phone"}, "spring"),
        "ads": SyncBinding(
            "gdpr_audience", relation, "ads", "mirror", None, {"email": "email", "phone": "phone"}, "ads"
        ),
        "pg": SyncBinding("gdpr_audience", relation, "pg", "mirror", None, {"email": "email"}, "pg"),
    }


def _sync(world: World, which: str, now: dt.datetime, **changes: Any):
    binding = _bindings()[which]
    if changes:
        binding = SyncBinding(**{**binding.__dict__, **changes})
    if which == "sms":
        config = {"url": world.sink.url("/sms"), "secret_env": "SMS_SECRET", "retry_base_seconds": 0.01}
        destination = WebhookDestination.from_config("sms", config, {"SMS_SECRET": SECRET})
    elif which == "ads":
        destination = AudienceFilesDestination.from_config("ads", {"directory": str(world.audiences)})
    else:
        destination = PostgresTableDestination.from_config(
            "pg", {"dsn_env": "PRIVACY_PG_DSN", "table": world.pg_table}, {"PRIVACY_PG_DSN": world.dsn or ""}
        )
    con = duckdb.connect(str(world.warehouse))
    try:
        return SyncEngine(con, destination, binding, PolicyConfig(), now=now).run()
    finally:
        con.close()
        destination.close()


def _pg_ids(world: World) -> set[str]:
    import psycopg
    from psycopg import sql

    with psycopg.connect(world.dsn) as conn:
        rows = conn.execute(sql.SQL("select customer_id from {}").format(sql.Identifier(world.pg_table)))
        return {r[0] for r in rows.fetchall()}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    root = tmp_path_factory.mktemp("privacy")
    raw, home = root / "raw", root / "home"
    write_landing(raw)
    warehouse = home / "warehouse.duckdb"
    home.mkdir()
    try:
        dsn = request.getfixturevalue("postgres_dsn")
    except pytest.skip.Exception:  # no PostgreSQL here: only the Postgres test skips
        dsn = None
    with HttpSink(root / "sink", secret=SECRET) as sink:
        w = World(
            raw, warehouse, home, sink, root / "audiences", dsn=dsn, pg_table=f"gdpr_{uuid.uuid4().hex[:8]}"
        )
        build_warehouse(raw, warehouse, AS_OF)
        con = duckdb.connect(str(warehouse))
        try:
            w.customer_id = con.execute(
                "select customer_id from marts.customer_id_map where source_id = 'g-ada'"
            ).fetchone()[0]
            # a score, as the ML asset writes them: the erasure deletes it
            con.execute(
                "insert into ml.customer_scores (customer_id, churn_probability, as_of_date) "
                "select customer_id, 0.5, date '2026-03-10' from marts.dim_customers"
            )
            con.execute("create schema segments")
            con.execute(
                "create view segments.gdpr_audience as "
                "select customer_id, email, phone from marts.dim_customers where email is not null"
            )
        finally:
            con.close()
        _sync(w, "sms", SENT_AT)
        _sync(w, "ads", SENT_AT)
        if dsn:
            _sync(w, "pg", SENT_AT)
            w.pg_before = _pg_ids(w)
        # Ada clicks her SMS: the receiver's line lands, and the next build models it
        con = duckdb.connect(str(warehouse))
        key = con.execute(
            "select cast(idempotency_key as varchar) from tideline_sync.delivery_log "
            "where customer_id = ? and status = 'sent'",
            [w.customer_id],
        ).fetchone()[0]
        con.close()
        write_jsonl(
            raw / "engagement/events/receiver-1.jsonl",
            [{"event_id": uuid.uuid4().hex, "event_type": "clicked", "occurred_at": "2026-03-09T12:00:00Z",
              "source": "tracking", "message_key": key, "customer_id": w.customer_id, "campaign": "spring",
              "channel": "sms", "url": "https://shop.example/spring"}],
        )  # fmt: skip
        build_warehouse(raw, warehouse, AS_OF)

        common = ("--warehouse", str(warehouse), "--home", str(home))
        code, w.export_out = _cli("customer", "export", "--email", " ADA@Example.com ", *common)
        assert code == 0, w.export_out
        w.export_path = Path(w.export_out.split(" to ", 1)[1].split(" (mode", 1)[0])
        w.document = json.loads(w.export_path.read_text())

        w.erase_code, w.erase_out = _cli(
            "customer",
            "erase",
            "--customer-id",
            "g-ada",
            "--by",
            "dpo@shop.example",
            "--reason",
            "ticket 7",
            *common,
        )
        # the next syncs, before any rebuild: a new SMS campaign version, and the two mirrors
        w.sms_after = _sync(w, "sms", AFTER_ERASURE, content_version="v2")
        w.audience_after = _sync(w, "ads", AFTER_ERASURE)
        if dsn:
            w.pg_result = _sync(w, "pg", AFTER_ERASURE)
            w.pg_after = _pg_ids(w)
        con = duckdb.connect(str(warehouse), read_only=True)
        tables = con.execute(
            "select table_name from information_schema.tables where table_schema = 'tideline_sync' "
            "and table_type = 'BASE TABLE'"
        ).fetchall()
        w.tideline_sync_text = " ".join(
            str(v)
            for (t,) in tables
            for row in con.execute(f'select * from tideline_sync."{t}"').fetchall()
            for v in row
        ).lower()
        con.close()
        build_warehouse(raw, warehouse, AS_OF)  # the next pipeline run
        yield w


def _rows(document: dict, section: str, relation: str) -> list[dict]:
    (part,) = [p for p in document["sections"][section] if p["relation"] == relation]
    return part["rows"]


def test_the_export_holds_ada_s_orders_messages_engagement_and_identities(world: World) -> None:
    doc = world.document
    assert doc["customer_id"] == world.customer_id
    assert sorted(doc["identities"]["source_ids"]) == ["c1", "g-ada"]
    assert doc["identities"]["anonymous_ids"] == ["anon-ada"]
    assert doc["identities"]["emails"] == [ADA_EMAIL] and doc["identities"]["phones"] == [ADA_PHONE]
    assert sorted(r["order_id"] for r in _rows(doc, "orders", "staging.stg_commerce__orders")) == [
        "o1",
        "o2",
        "o3",
    ]
    assert sorted(r["order_id"] for r in _rows(doc, "order_items", "staging.stg_commerce__order_items")) == [
        "o1", "o1", "o2", "o3"
    ]  # fmt: skip
    # the anonymous page view before the signup is hers too
    assert sorted(r["event_id"] for r in _rows(doc, "events", "staging.stg_events__events")) == ["e1", "e2"]
    ledger = _rows(doc, "messages", "tideline_sync.delivery_log")
    mirrors = {("ads", "sent"), ("pg", "sent")} if world.dsn else {("ads", "sent")}
    assert {(r["campaign"], r["status"]) for r in ledger} == {("spring", "sent"), *mirrors}
    (message,) = _rows(doc, "messages", "marts.fct_messages")
    assert message["campaign"] == "spring" and message["channel"] == "sms"
    assert [r["event_type"] for r in _rows(doc, "engagement", "marts.fct_message_events")] == ["clicked"]
    assert _rows(doc, "profile", "marts.dim_customers")[0]["email"] == ADA_EMAIL
    assert {r["channel"] for r in _rows(doc, "consents", "staging.stg_crm__consents")} == {"email", "sms"}
    assert [r["churn_probability"] for r in _rows(doc, "scores", "ml.customer_scores")] == [0.5]
    # what this warehouse does not have yet is listed, not an error
    assert {"relation": "tideline_journeys.entries", "absent": True} in doc["sections"]["journeys"]


def test_the_export_file_is_private_and_stdout_carries_no_data(world: World) -> None:
    assert world.export_path is not None and world.export_path.parent == world.home / "exports"
    assert stat.S_IMODE(world.export_path.stat().st_mode) == 0o600
    assert "orders" in world.export_out and "       3 rows" in world.export_out
    out = world.export_out.lower()
    assert "ada" not in out.replace("mode 0600", "") and "@" not in out and "7700" not in out


def test_erase_records_the_request_without_the_address_and_lists_the_landing_files(world: World) -> None:
    assert world.erase_code == 0, world.erase_out
    assert f"recorded for customer {world.customer_id} by dpo@shop.example" in world.erase_out
    listed = {line.strip() for line in world.erase_out.splitlines() if ": " in line and "row(s)" in line}
    assert {
        "commerce/order_items/part-1.csv: 4 row(s)",
        "commerce/orders/part-1.csv: 3 row(s)",
        "crm/consents/part-1.csv: 2 row(s)",
        "crm/contacts/part-1.csv: 1 row(s)",
        "engagement/events/receiver-1.jsonl: 1 row(s)",
        "events/part-1.jsonl: 2 row(s)",
    } <= listed
    # the ledger schema after the erasure: ids, keys, statuses and hashes; no address or phone
    text = world.tideline_sync_text
    assert ADA_EMAIL not in text and "7700900123" not in text and "lovelace" not in text
    assert sha(ADA_EMAIL) in text and sha(ADA_PHONE) in text and "erased" in text


def test_a_sync_after_the_erasure_sends_ada_nothing_and_removes_her_from_the_audience(world: World) -> None:
    sent_to = [
        r["customer_id"]
        for req in world.sink.requests_for("/sms")
        for r in req.body["records"]
        if r["customer_id"]
    ]
    assert sorted(sent_to) == sorted([world.customer_id, *OTHERS, *OTHERS])  # v1 to all, v2 without her
    assert world.sms_after.sent == 4
    result = world.audience_after
    assert result.counts["removed"] == 1 and result.sent == 1
    with (world.audiences / "gdpr_audience" / result.sync_id / "remove.csv").open(newline="") as fh:
        assert [r["email_sha256"] for r in csv.DictReader(fh)] == [sha(ADA_EMAIL)]


def test_a_sync_after_the_erasure_deletes_ada_from_the_postgres_table(world: World) -> None:
    if world.dsn is None:
        pytest.skip("no PostgreSQL server binaries (tests/integration/postgres.py)")
    assert world.pg_before == {world.customer_id, *OTHERS}
    assert world.pg_after == set(OTHERS)
    assert world.pg_result.counts["removed"] == 1


def test_after_the_rebuild_no_table_holds_ada_s_ids_email_or_phone(world: World) -> None:
    con = duckdb.connect(str(world.warehouse), read_only=True)
    try:
        columns = con.execute(
            """select table_schema, table_name, column_name from information_schema.columns
               where table_schema in ('marts', 'ml', 'intermediate', 'staging', 'analytics')
                 and data_type = 'VARCHAR'
                 -- the erasure record itself: ids and hashes kept on purpose, to match future rows
                 and table_name <> 'stg_tideline_privacy__erased_identities'
               order by 1, 2, 3"""
        ).fetchall()
        assert len(columns) > 100  # the whole build is scanned
        found = []
        for schema, table, column in columns:
            hits = con.execute(
                f"""select count(*) from "{schema}"."{table}"
                    where list_contains(?, "{column}") or contains(lower("{column}"), ?)
                       or contains("{column}", ?)""",
                [list(ADA_IDS), ADA_EMAIL, ADA_PHONE[3:]],
            ).fetchone()[0]
            if hits:
                found.append(f"{schema}.{table}.{column}: {hits}")
        assert found == []
        # the others are all still there
        customers = {r[0] for r in con.execute("select customer_id from marts.dim_customers").fetchall()}
        assert customers == set(OTHERS)
        assert con.execute("select count(*) from marts.fct_messages").fetchone()[0] == 8  # 4 v1 + 4 v2
    finally:
        con.close()


def test_an_export_after_the_erasure_shows_only_the_non_personal_keys_left(world: World) -> None:
    code, out = _cli(
        "customer", "export", "--customer-id", "c1", "--out", str(world.home / "after.json"),
        "--warehouse", str(world.warehouse), "--home", str(world.home),
    )  # fmt: skip
    assert code == 0, out
    doc = json.loads((world.home / "after.json").read_text())
    assert doc["identities"]["erased_by_request"] and doc["identities"]["emails"] == []
    assert _rows(doc, "profile", "marts.dim_customers") == []
    assert _rows(doc, "orders", "staging.stg_commerce__orders") == []
    assert {r["status"] for r in _rows(doc, "messages", "tideline_sync.delivery_log")} == {"sent"}
    assert ADA_EMAIL not in json.dumps(doc)
    code, _ = _cli(
        "customer", "erase", "--customer-id", "c1", "--by", "dpo",
        "--warehouse", str(world.warehouse), "--home", str(world.home),
    )  # fmt: skip
    assert code == 2  # erased already: said, nothing recorded twice
