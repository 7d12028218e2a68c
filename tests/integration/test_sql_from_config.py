"""Config text reaches SQL only as bound values (issue 11 item 3).

Variant and campaign names come from a segment's YAML; DuckDB runs every statement of a
multi-statement string, so a name spliced into SQL could break a sync (`Mother's Day`) or run
a statement of its own (`'; drop table ...; --`). Real syncs (webhook destination, HttpSink on
loopback, a DuckDB file) with such names must send, record the names verbatim and drop nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from activation.config import PolicyConfig, SyncBinding
from activation.destinations.webhook import WebhookDestination
from activation.engine import SyncEngine
from activation.policies import stable_unit
from tideline.demo.sinks.http_sink import HttpSink

SECRET = "sql-test-secret"
NOON = dt.datetime(2026, 3, 2, 12, 0)
INJECTION = "x'; drop table marts.segment; --"
CUSTOMERS = [f"c{i:03d}" for i in range(60)]


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema marts")
    con.execute(
        """create table marts.dim_customers as
           select 'c' || lpad(cast(i as varchar), 3, '0') as customer_id, true as email_opt_in,
                  'Europe/London' as timezone
           from range(60) t(i)"""
    )
    con.execute(
        "create table marts.segment as select customer_id, customer_id || '@example.com' as email "
        "from marts.dim_customers"
    )
    con.close()
    return path


def _sync(path: Path, sink: HttpSink, binding: SyncBinding, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TEST_SQL_SECRET", SECRET)
    destination = WebhookDestination.from_config(
        "esp", {"url": sink.url("/esp"), "secret_env": "TEST_SQL_SECRET"}
    )
    con = duckdb.connect(str(path))
    try:
        result = SyncEngine(con, destination, binding, PolicyConfig(), now=NOON).run()
        ledger = con.execute(
            "select customer_id, variant, campaign, cast(idempotency_key as varchar) from tideline_sync.delivery_ledger"
        ).fetchall()
        tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
    finally:
        con.close()
    return result, ledger, tables


def test_variant_and_campaign_names_with_quotes_sync_and_are_recorded(
    warehouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign = "Mother's Day"
    variants = {"Mother's Day": {}, INJECTION: {}}
    binding = SyncBinding(
        "segment", "marts.segment", "esp", "message", "email", {"email": "email"}, campaign,
        holdout_share=0.2, variants=variants, variant_weights={"Mother's Day": 0.5, INJECTION: 0.5},
    )  # fmt: skip
    with HttpSink(secret=SECRET, dedupe=False) as sink:
        result, ledger, tables = _sync(warehouse, sink, binding, monkeypatch)
        batches = sink.requests_for("/esp")

    assert "segment" in tables and "dim_customers" in tables  # nothing dropped
    held = {c for c in CUSTOMERS if stable_unit(f"holdout|{campaign}", c) < 0.2}
    assert result.sent == len(CUSTOMERS) - len(held) and result.skipped_by_reason == {"holdout": len(held)}
    # each customer's variant by the stable hash, the names recorded verbatim in the ledger and the batches
    names = sorted(variants)  # the first name takes the hash's lower half
    expected = {c: names[0] if stable_unit(f"variant|{campaign}", c) < 0.5 else names[1] for c in CUSTOMERS}
    recorded = {customer: variant for customer, variant, _, _ in ledger}
    assert {c: v for c, v in recorded.items() if c not in held} == {
        c: v for c, v in expected.items() if c not in held
    }
    assert {campaign_name for _, _, campaign_name, _ in ledger} == {campaign}
    sent_variants = Counter(batch.body["variant"] for batch in batches for _ in batch.body["records"])
    assert set(sent_variants) == set(variants)
    # the idempotency key is sha256(destination|segment|customer|campaign:version), quotes and all
    keys = {customer: key for customer, _, _, key in ledger}
    digest = hashlib.sha256(f"esp|segment|c007|{campaign}:v1".encode()).hexdigest()[:32]
    assert keys["c007"].replace("-", "") == digest
