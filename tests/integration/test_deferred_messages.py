"""Quiet-hours deferrals store when they may go out, and a sensor reruns the sync then.

A real engine run (webhook to a loopback HttpSink) defers the customers for whom it is
night; the ledger holds when their quiet hours end, and the `deferred_messages` sensor,
evaluated against the warehouse file, asks for a run of exactly that activation asset.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from activation.config import PolicyConfig, SyncBinding
from activation.destinations.webhook import WebhookDestination
from activation.engine import SyncEngine
from activation.ledger import due_deferrals
from activation.sinks.http_sink import HttpSink
from orchestration.activation import deferred_messages_sensor
from orchestration.resources import WarehouseResource

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
    os.environ["TEST_WEBHOOK_SECRET"] = "s"
    with HttpSink(secret="s") as sink:
        destination = WebhookDestination.from_config(
            "push", {"url": sink.url("/push"), "secret_env": "TEST_WEBHOOK_SECRET"}
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
