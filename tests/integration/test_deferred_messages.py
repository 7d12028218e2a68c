"""Quiet-hours deferrals store when they may go out, and a sensor reruns the sync then.

A real engine run (webhook to a loopback HttpSink) defers the customers for whom it is
night; the ledger holds when their quiet hours end, and the `deferred_messages` sensor,
evaluated against the warehouse file, asks for a run of exactly that activation asset.

Unsubscribes between the deferral and the rerun (issue 11 item 2): the real activation asset
defers a campaign, 30 of 40 customers unsubscribe through the real engagement receiver
(uvicorn on loopback), and the asset's rerun, with no dbt build in between, sends to the 10
others only; a later consent grant (as dbt reports it in dim_customers) lifts an unsubscribe.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import requests

from activation import tokens
from activation.config import PolicyConfig, SyncBinding
from activation.destinations.webhook import WebhookDestination
from activation.engine import SyncEngine
from activation.ledger import due_deferrals
from orchestration.activation import _sync_asset, deferred_messages_sensor
from orchestration.resources import ActivationConfigResource, PipelineSettings, WarehouseResource
from tests.conftest import TEST_TRACKING_SECRET
from tests.integration.test_receiver import Receiver
from tideline.demo.sinks.http_sink import HttpSink

NOON = dt.datetime(2026, 3, 2, 12, 0)  # UTC: 21:00 in Tokyo (quiet), 12:00 in London, 07:00 in New York
POLICIES = PolicyConfig(quiet_hours_start=21, quiet_hours_end=8)


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema marts")
    con.execute(
        """create table marts.dim_customers as
           select * from (values ('tokyo', 'Asia/Tokyo'), ('london', 'Europe/London'),
                                 ('newyork', 'America/New_York'), ('nowhere', 'Not/AZone')) t(customer_id, timezone)"""
    )
    con.execute("alter table marts.dim_customers add column push_opt_in boolean default true")
    con.execute(
        "create table marts.segment as select customer_id, customer_id || '@example.com' as email from marts.dim_customers"
    )
    con.close()
    return path


def _run(path: Path, now: dt.datetime) -> None:
    with HttpSink(secret="s") as sink:
        destination = WebhookDestination.from_config(
            "push",
            {"url": sink.url("/push"), "secret_env": "TEST_WEBHOOK_SECRET"},
            {"TEST_WEBHOOK_SECRET": "s"},
        )
        binding = SyncBinding(
            "segment", "marts.segment", "push", "message", "push", {"email": "email"}, "launch"
        )
        con = duckdb.connect(str(path))
        SyncEngine(con, destination, binding, POLICIES, now=now).run()
        con.close()


def test_a_deferral_stores_when_quiet_hours_end_for_the_customer(warehouse: Path) -> None:
    _run(warehouse, NOON)  # 07:00 in New York is quiet too (before 08:00)
    con = duckdb.connect(str(warehouse))
    deferred = dict(
        con.execute(
            "select customer_id, not_before from tideline_sync.delivery_ledger where status = 'deferred'"
        ).fetchall()
    )
    assert deferred == {
        "tokyo": dt.datetime(2026, 3, 2, 23, 0),  # 08:00 on 3 March in Tokyo
        "newyork": dt.datetime(2026, 3, 2, 13, 0),  # 08:00 the same day in New York
    }
    assert due_deferrals(con, dt.datetime(2026, 3, 2, 12, 30)) == {}
    assert due_deferrals(con, dt.datetime(2026, 3, 2, 13, 0)) == {
        "segment__push": dt.datetime(2026, 3, 2, 13, 0)
    }
    assert due_deferrals(con, dt.datetime(2026, 3, 3, 0, 0)) == {
        "segment__push": dt.datetime(2026, 3, 2, 23, 0)
    }
    con.close()
    _run(warehouse, dt.datetime(2026, 3, 2, 23, 30))  # the rerun: morning in Tokyo and, long since, New York
    con = duckdb.connect(str(warehouse))
    statuses = dict(con.execute("select customer_id, status from tideline_sync.delivery_ledger").fetchall())
    assert statuses == {"tokyo": "sent", "london": "sent", "newyork": "sent", "nowhere": "sent"}
    assert due_deferrals(con, dt.datetime(2026, 3, 4)) == {}  # nothing deferred is left
    con.close()


def test_a_rerun_in_the_same_quiet_hours_records_the_deferral_once(warehouse: Path) -> None:
    """A run every few minutes through the night defers Tokyo to the same morning: one ledger row,
    not one per run (the log would grow with every run, and what reads it would be rebuilt)."""
    for minutes in (0, 10, 20):
        _run(warehouse, NOON + dt.timedelta(minutes=minutes))
    con = duckdb.connect(str(warehouse))
    rows = con.execute(
        "select customer_id, count(*) from tideline_sync.delivery_log where status = 'deferred' group by 1"
    ).fetchall()
    assert dict(rows) == {"tokyo": 1, "newyork": 1}
    con.close()
    _run(warehouse, dt.datetime(2026, 3, 3, 1, 0))  # 10:00 in Tokyo: the one deferral is sent
    con = duckdb.connect(str(warehouse))
    statuses = dict(con.execute("select customer_id, status from tideline_sync.delivery_ledger").fetchall())
    assert statuses == {"tokyo": "sent", "london": "sent", "newyork": "sent", "nowhere": "sent"}
    con.close()


def test_the_sensor_requests_a_run_of_the_sync_with_due_deferrals(warehouse: Path) -> None:
    _run(warehouse, NOON)  # deferrals due on 2 March 2026, long before the sensor's real clock
    binding = SyncBinding("segment", "marts.segment", "push", "message", "push", {"email": "email"}, "launch")
    job = dg.define_asset_job(
        "activation_deferred", selection=dg.AssetSelection.assets(["activation", "segment__push"])
    )
    sensor = deferred_messages_sensor([binding], job)
    with dg.build_sensor_context(resources={"warehouse": WarehouseResource(path=str(warehouse))}) as context:
        result = sensor(context)
    requests = result if isinstance(result, list) else [result]
    assert len(requests) == 1 and isinstance(requests[0], dg.RunRequest)
    assert requests[0].asset_selection == [dg.AssetKey(["activation", "segment__push"])]
    assert requests[0].run_key == "segment__push:2026-03-02T23:00"

    missing = WarehouseResource(path=str(warehouse.parent / "none.duckdb"))
    with dg.build_sensor_context(resources={"warehouse": missing}) as context:
        assert isinstance(sensor(context), dg.SkipReason)


# --- unsubscribes reach the deferred rerun without a dbt build ---------------------------------------

TRACKING_SECRET = TEST_TRACKING_SECRET.encode()
SINK_SECRET = "intake-sink-secret"
CAMPAIGN_CUSTOMERS = [f"u{i:02d}" for i in range(40)]
UNSUBSCRIBERS = CAMPAIGN_CUSTOMERS[:30]
ACTIVATION_YML = """
destinations:
  esp:
    type: webhook
    url: ${TEST_INTAKE_SINK_URL}
    secret_env: TEST_INTAKE_SECRET
policies:
  quiet_hours:
    start: "${TIDELINE_QUIET_HOURS_START:-21}"
    end: "${TIDELINE_QUIET_HOURS_END:-8}"
  default_timezone: UTC
"""


def _campaign_binding(version: str = "v1") -> SyncBinding:
    return SyncBinding(
        "spring_sale", "marts.spring_sale", "esp", "message", "email", {"email": "email"}, "spring",
        content_version=version,
    )  # fmt: skip


def _materialize(binding: SyncBinding, warehouse: Path, config: Path, raw: Path) -> dict:
    """The sync's real Dagster asset, as the deferred_messages sensor's run request runs it."""
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [_sync_asset(binding)],
            instance=instance,
            resources={
                "warehouse": WarehouseResource(path=str(warehouse)),
                # the variables the config names, from the (monkeypatched) environment, as in a run
                "activation": ActivationConfigResource.from_environment(str(config), os.environ),
                "pipeline": PipelineSettings(raw_dir=str(raw)),
            },
        )
    assert result.success
    [event] = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


def _unsubscribe(receiver: Receiver, message_key: str, customer_id: str) -> None:
    """What the List-Unsubscribe one-click POST of the customer's earlier email does."""
    token = tokens.sign(
        {"m": message_key, "c": customer_id, "k": "unsubscribe", "s": "spring_sale"}, TRACKING_SECRET
    )
    response = requests.post(
        f"{receiver.base_url}/u/{token}", data={"List-Unsubscribe": "One-Click"}, timeout=5
    )
    assert response.status_code == 200, response.text


@pytest.mark.slow  # several seconds: real servers and whole syncs (Dagster for the check)
def test_unsubscribes_through_the_receiver_stop_the_deferred_rerun(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw, path, config = tmp_path / "raw", tmp_path / "warehouse.duckdb", tmp_path / "activation.yml"
    config.write_text(ACTIVATION_YML)
    con = duckdb.connect(str(path))
    con.execute("create schema marts")
    con.execute(
        """create table marts.dim_customers as
           select 'u' || lpad(cast(i as varchar), 2, '0') as customer_id, 'UTC' as timezone,
                  true as email_opt_in, timestamp '2026-01-01 00:00:00' as email_consent_at
           from range(40) t(i)"""
    )
    con.execute(
        "create table marts.spring_sale as select customer_id, customer_id || '@example.com' as email "
        "from marts.dim_customers"
    )
    con.close()
    # quiet hours around the current UTC hour (at least an hour left): every customer is deferred
    hour = dt.datetime.now(dt.UTC).hour
    monkeypatch.setenv("TIDELINE_QUIET_HOURS_START", str(hour))
    monkeypatch.setenv("TIDELINE_QUIET_HOURS_END", str((hour + 2) % 24))
    monkeypatch.setenv("TEST_INTAKE_SECRET", SINK_SECRET)

    with HttpSink(secret=SINK_SECRET, dedupe=False) as sink:
        monkeypatch.setenv("TEST_INTAKE_SINK_URL", sink.url("/esp"))
        first = _materialize(_campaign_binding(), path, config, raw)
        assert first["sent"] == 0 and first["skipped_by_reason"] == {"quiet_hours": 40}
        con = duckdb.connect(str(path))
        keys = dict(
            con.execute(
                "select customer_id, cast(idempotency_key as varchar) from tideline_sync.delivery_ledger "
                "where status = 'deferred'"
            ).fetchall()
        )
        con.close()
        assert sorted(keys) == CAMPAIGN_CUSTOMERS

        receiver = Receiver(
            raw,
            tracking_secret=TRACKING_SECRET,
            webhook_secret="unused-webhook-secret-for-this-test-0123456789",
        )
        try:
            for customer in UNSUBSCRIBERS:
                _unsubscribe(receiver, keys[customer], customer)
        finally:
            receiver.stop()

        # quiet hours are over (start = end: none): the rerun, with no dbt build in between
        monkeypatch.setenv("TIDELINE_QUIET_HOURS_START", "0")
        monkeypatch.setenv("TIDELINE_QUIET_HOURS_END", "0")
        rerun = _materialize(_campaign_binding(), path, config, raw)
        delivered = sorted(r["customer_id"] for req in sink.requests_for("/esp") for r in req.body["records"])
        assert delivered == CAMPAIGN_CUSTOMERS[30:]  # 0 of the 30 who unsubscribed
        assert rerun["revocations_taken_in"] == 30
        assert rerun["skipped_by_reason"] == {"no_consent": 30}

        # taken in once: the next sync reads no line twice and sends nothing again
        again = _materialize(_campaign_binding(), path, config, raw)
        assert (again["revocations_taken_in"], again["sent"]) == (0, 0)

        # five of them opt in again later; once dbt has built that, the newer grant wins
        con = duckdb.connect(str(path))
        con.execute(
            "update marts.dim_customers set email_consent_at = now()::timestamp + interval 1 minute "
            "where customer_id in ('u00', 'u01', 'u02', 'u03', 'u04')"
        )
        con.close()
        next_campaign = _materialize(_campaign_binding("v2"), path, config, raw)
        assert next_campaign["sent"] == 15 and next_campaign["skipped_by_reason"] == {"no_consent": 25}
        delivered = [r["customer_id"] for req in sink.requests_for("/esp") for r in req.body["records"]]
        assert sorted(delivered[10:]) == ["u00", "u01", "u02", "u03", "u04", *CAMPAIGN_CUSTOMERS[30:]]
