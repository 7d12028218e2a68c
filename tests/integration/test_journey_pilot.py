"""A pilot on a journey's send step: the real tick and engine, sending to a loopback webhook sink.

The step's launch goes through the engine's launch gate (activation.launches.gate) as a segment
activation's does: the entries in the pilot sample (a stable hash of the journey's campaign and the
customer) are sent, the others wait at the step, not skipped, until the gate passes (then they go
in the tick that judges it), a person releases them, or cancels the pilot (then they move on,
skipped with `pilot:cancelled`). The engagement mart the gate reads (marts.launch_gate_rates) is
written here with hand-picked numbers, as dbt would build it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from activation.conditions import Catalog, parse_condition
from activation.config import load_config
from activation.journeys.deliver import EngineDelivery, binding_for
from activation.journeys.run import run_ticks
from activation.journeys.spec import END, Entry, EventTrigger, Journey, Send, Step
from activation.journeys.store import SCHEMA
from activation.launches.actions import approve, decide_pilot
from activation.launches.spec import LaunchSpec, parse_pilot
from activation.policies import stable_unit
from activation.warehouse import DuckDBLimits
from tideline.demo.sinks.http_sink import HttpSink

pytestmark = pytest.mark.slow  # real ticks through the engine to a sink

SECRET = "journey-pilot-test-secret"
T0 = dt.datetime(2026, 3, 10, 10, 0)
CUSTOMERS = [f"c{i:02d}" for i in range(40)]
PILOT = {c for c in CUSTOMERS if stable_unit("pilot|journey:cart", c) < 0.25}
GATE = {"share": 0.25, "wait": "2h", "min_delivered": 5, "gate": {"click_rate": {"min": 0.05}}}


def at(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create schema marts; create schema intermediate")
    con.execute(
        """create table marts.dim_customers (customer_id varchar, phone varchar, timezone varchar,
               email_opt_in boolean, sms_opt_in boolean, push_opt_in boolean, email_consent_at timestamp,
               sms_consent_at timestamp, push_consent_at timestamp)"""
    )
    con.execute(
        """create table intermediate.int_events_stitched (event_id varchar, customer_id varchar,
               event_type varchar, occurred_at timestamp, url varchar, utm_source varchar,
               utm_medium varchar, utm_campaign varchar, product_id varchar, anonymous_id varchar)"""
    )
    con.execute(
        """create table intermediate.int_orders_resolved (order_id varchar, customer_id varchar,
               ordered_at timestamp, is_purchase boolean, amount double, channel varchar,
               coupon_code varchar, used_coupon boolean, status varchar)"""
    )
    for i, cid in enumerate(CUSTOMERS):
        con.execute(
            "insert into marts.dim_customers values (?, ?, 'UTC', false, true, false, null, null, null)",
            [cid, f"+4470000{i:05d}"],
        )
        con.execute(
            """insert into intermediate.int_events_stitched
               values (?, ?, 'checkout_started', ?, null, null, null, null, null, null)""",
            [f"e{i}", cid, at(0)],
        )
    yield con
    con.close()


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    with HttpSink(secret=SECRET) as s:
        yield s


@pytest.fixture
def deliver(tmp_path: Path, sink: HttpSink) -> EngineDelivery:
    path = tmp_path / "activation.yml"
    destinations = {
        "sms": {"type": "webhook", "url": sink.url("/sms"), "secret_env": "TEST_SECRET"},
        "staff_alerts": {"type": "webhook", "url": sink.url("/alerts"), "secret_env": "TEST_SECRET"},
    }
    policies = {"quiet_hours": {"start": 0, "end": 0}, "frequency_caps": {"marketing": {}}}
    path.write_text(json.dumps({"destinations": destinations, "policies": policies}))
    config = load_config(path, env={"TEST_SECRET": SECRET})
    return EngineDelivery(config, tmp_path / "raw", DuckDBLimits.resolve(env={}), workers=1)


def journey(launch: LaunchSpec) -> Journey:
    """checkout_started -> an SMS with a pilot -> end."""
    send = Send("sms", "sms", {"phone": "phone"}, {"text": "your cart"}, launch=launch)
    return Journey(
        name="cart",
        source="test/cart.yml",
        entry=Entry(
            EventTrigger(parse_condition({"event": {"type": "checkout_started"}}, source="t", path="e"))
        ),
        steps=(Step("reminder", send, END),),
        canonical={"steps": ["reminder"], "pilot": GATE},
    )


def piloted(**gate: object) -> Journey:
    return journey(LaunchSpec(pilot=parse_pilot("test", {**GATE, **gate})))


def tick(con, j, clock, deliver):  # noqa: ANN001, ANN201
    (result,) = run_ticks(con, [j], clock, deliver=deliver, catalog=Catalog.default())
    return result


def sent(sink: HttpSink) -> Counter[str]:
    return Counter(r["customer_id"] for q in sink.requests_for("/sms") for r in q.body["records"])


def nodes(con) -> Counter[str | None]:
    return Counter(n for (n,) in con.execute(f"select current_node from {SCHEMA}.entries").fetchall())


def gate_rates(con, j: Journey, delivered: int, clicks: int) -> None:
    """marts.launch_gate_rates as dbt builds it, with these numbers for the journey step's launch."""
    b = binding_for(j, j.steps[0], SCHEMA, None)
    con.execute(
        """create or replace table marts.launch_gate_rates (sync_key varchar, campaign varchar, channel varchar,
               content_version varchar, metric varchar, successes bigint, sample bigint, rate double,
               first_sent_at timestamp)"""
    )
    for metric, k in (("delivery_rate", delivered), ("click_rate", clicks)):
        con.execute(
            "insert into marts.launch_gate_rates values (?, ?, 'sms', ?, ?, ?, ?, ?, null)",
            [b.sync_key, b.campaign, b.content_version, metric, k, delivered, k / delivered],
        )


def skipped_rows(con) -> Counter[str]:
    rows = con.execute(
        "select reason from tideline_sync.delivery_log where status = 'skipped' and sync_key = 'journey__cart__reminder__sms'"
    ).fetchall()
    return Counter(r for (r,) in rows)


def test_the_pilot_goes_first_the_rest_waits_at_the_step_and_goes_when_the_gate_passes(
    con, sink: HttpSink, deliver: EngineDelivery
) -> None:
    j = piloted()
    assert 4 < len(PILOT) < 16
    first = tick(con, j, at(0.1), deliver)
    assert first.entered == 40 and first.sent == len(PILOT)
    assert set(sent(sink)) == PILOT
    assert first.by_reason["waiting:pilot:awaiting_gate"] == 40 - len(PILOT)
    assert nodes(con) == Counter({None: len(PILOT), "reminder": 40 - len(PILOT)})

    # ticks before the wait is over: the rest still waits, and the ledger holds one skip row per
    # held entry, not one per tick
    for hours in (0.5, 1.0, 1.5):
        again = tick(con, j, at(hours), deliver)
        assert again.sent == 0 and again.by_reason["waiting:pilot:awaiting_gate"] == 40 - len(PILOT)
    assert skipped_rows(con) == Counter({"pilot:awaiting_gate": 40 - len(PILOT)})

    gate_rates(con, j, delivered=len(PILOT), clicks=len(PILOT))  # everyone clicked: the bound passes
    judged = tick(con, j, at(2.5), deliver)
    assert judged.sent == 40 - len(PILOT)
    assert sent(sink) == Counter({c: 1 for c in CUSTOMERS})  # everyone once, the pilot not again
    assert nodes(con) == Counter({None: 40})
    verdict = con.execute(
        "select decision, sample, decided_by from tideline_sync.launch_decisions where metric is null"
    ).fetchall()
    assert verdict == [("pass", len(PILOT), "gate:auto")]
    stages = dict(
        con.execute(
            "select stage, count(*) from tideline_sync.delivery_log where status = 'sent' group by 1"
        ).fetchall()
    )
    assert stages == {"pilot": len(PILOT), "full": 40 - len(PILOT)}


def test_a_failed_gate_holds_the_rest_alerts_once_and_a_cancel_moves_them_on_unsent(
    con, sink: HttpSink, deliver: EngineDelivery
) -> None:
    j = piloted()
    tick(con, j, at(0.1), deliver)
    gate_rates(con, j, delivered=len(PILOT), clicks=0)
    held = tick(con, j, at(2.5), deliver)
    assert held.sent == 0 and held.by_reason["waiting:pilot:gate_failed"] == 40 - len(PILOT)
    tick(con, j, at(3.0), deliver)
    alerts = [r for q in sink.requests_for("/alerts") for r in q.body["records"]]
    assert len(alerts) == 1 and alerts[0]["fields"]["activation"] == "journey__cart__reminder__sms"
    assert nodes(con)["reminder"] == 40 - len(PILOT)

    decide_pilot(con, binding_for(j, j.steps[0], SCHEMA, None), "cancelled", "maria", now=at(3.5))
    cancelled = tick(con, j, at(4.0), deliver)
    assert cancelled.sent == 0 and cancelled.by_reason["skipped:pilot:cancelled"] == 40 - len(PILOT)
    assert nodes(con) == Counter({None: 40})  # nobody is left waiting at the step
    assert set(sent(sink)) == PILOT
    exits = dict(
        con.execute(
            f"select outcome, count(*) from {SCHEMA}.steps where from_node = 'reminder' group by 1"
        ).fetchall()
    )
    assert exits == {"sent": len(PILOT), "skipped": 40 - len(PILOT)}


def test_a_released_pilot_sends_the_rest_and_new_entries_go_at_once(
    con, sink: HttpSink, deliver: EngineDelivery
) -> None:
    j = piloted(min_delivered=1000)  # never judged: the rest waits for a person
    tick(con, j, at(0.1), deliver)
    gate_rates(con, j, delivered=len(PILOT), clicks=len(PILOT))
    waiting = tick(con, j, at(5), deliver)
    assert waiting.sent == 0 and waiting.by_reason["waiting:pilot:awaiting_gate"] == 40 - len(PILOT)
    decide_pilot(con, binding_for(j, j.steps[0], SCHEMA, None), "released", "lee", now=at(5.5))
    con.execute(
        """insert into marts.dim_customers values ('late', '+447000099999', 'UTC', false, true, false,
               null, null, null)"""
    )
    con.execute(
        """insert into intermediate.int_events_stitched
           values ('e_late', 'late', 'checkout_started', ?, null, null, null, null, null, null)""",
        [at(5.8)],
    )
    released = tick(con, j, at(6), deliver)
    assert released.sent == 40 - len(PILOT) + 1  # the held rest and the newcomer
    assert sent(sink) == Counter({c: 1 for c in [*CUSTOMERS, "late"]})


def test_a_step_above_its_approval_limit_waits_for_a_person_then_sends(
    con, sink: HttpSink, deliver: EngineDelivery
) -> None:
    j = journey(LaunchSpec(approval_above=10))  # 40 entries reach the step in the first tick
    for hours in (0.1, 0.5):
        waiting = tick(con, j, at(hours), deliver)
        assert waiting.sent == 0 and waiting.by_reason["waiting:approval:awaiting"] == 40
    assert nodes(con) == Counter({"reminder": 40})
    approve(con, binding_for(j, j.steps[0], SCHEMA, None), "dana", now=at(0.7))
    approved = tick(con, j, at(1), deliver)
    assert approved.sent == 40 and sent(sink) == Counter({c: 1 for c in CUSTOMERS})


def test_a_dry_run_simulation_holds_the_rest_as_the_live_tick_does(
    con, tmp_path: Path, sink: HttpSink
) -> None:
    path = tmp_path / "dry.yml"
    path.write_text(
        json.dumps(
            {
                "destinations": {"sms": {"type": "webhook", "url": sink.url("/sms"), "secret_env": "S"}},
                "policies": {"quiet_hours": {"start": 0, "end": 0}, "frequency_caps": {"marketing": {}}},
            }
        )
    )
    dry = EngineDelivery(
        load_config(path, env={"S": SECRET}), tmp_path / "raw", DuckDBLimits.resolve(env={}), dry_run=True
    )
    result = tick(con, piloted(), at(0.1), dry)
    assert result.sent == len(PILOT) and result.by_reason["waiting:pilot:awaiting_gate"] == 40 - len(PILOT)
    assert sink.requests_for("/sms") == []


PILOTED_FILE = """
entry: {event: checkout_started}
steps:
  - id: reminder
    send:
      destination: sms
      channel: sms
      text: "Your cart is waiting"
      fields: {phone: phone}
      pilot: {share: 0.1, wait: 24h, gate: {click_rate: {min: 0.02}}}
      approval_above: 0
"""


@pytest.mark.slow  # the command parses the dbt project for the segments' content versions
def test_release_and_approve_a_journey_step_from_the_command_line(
    isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from tideline.cli import main

    folder = tmp_path / "journeys"
    folder.mkdir()
    (folder / "cart.yml").write_text(PILOTED_FILE)
    monkeypatch.setenv("TIDELINE_JOURNEYS_DIR", str(folder))
    assert main(["pilot", "release", "cart", "--by", "maria"]) == 0  # a journey: its piloted steps
    out = capsys.readouterr().out
    assert "journey__cart__reminder__sms (campaign journey:cart, content " in out
    assert "pilot released by maria before its gate was judged" in out
    assert main(["approve", "journey__cart__reminder__sms", "--by", "dana"]) == 0
    assert main(["approve", "journey:cart", "--by", "dana"]) == 2
    assert "already approved by dana" in capsys.readouterr().err
    con = duckdb.connect(str(isolated_home / "warehouse.duckdb"), read_only=True)
    rows = con.execute(
        "select sync_key, content_version, stage, decision, decided_by from tideline_sync.launch_decisions"
        " order by decided_at"
    ).fetchall()
    con.close()
    (version,) = {r[1] for r in rows}
    assert version.endswith(":reminder")
    assert [(r[0], r[2], r[3], r[4]) for r in rows] == [
        ("journey__cart__reminder__sms", "pilot", "released", "maria"),
        ("journey__cart__reminder__sms", "approval", "approved", "dana"),
    ]
