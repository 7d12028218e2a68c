"""Journey ticks on a small hand-built warehouse, sending through the real activation engine to the
project's HTTP sink on loopback: entries, waits, exits before actions, goals, consent, branches,
splits, tags, holdouts, re-entry, versions in flight, pause and archive, at chosen clock times.

The warehouse holds only what the tick reads: marts.dim_customers and dbt's events and orders
relations (intermediate.int_events_stitched, intermediate.int_orders_resolved), created with plain
DDL. Every figure below is worked out by hand from the rows in `warehouse`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from activation.conditions import Catalog, parse_condition
from activation.config import load_config
from activation.journeys.deliver import EngineDelivery
from activation.journeys.run import run_ticks
from activation.journeys.spec import (
    END,
    Branch,
    BranchArm,
    DateTrigger,
    Entry,
    EventTrigger,
    Goal,
    Journey,
    Send,
    Split,
    SplitArm,
    Step,
    TagAction,
    Wait,
)
from activation.policies import stable_unit
from activation.warehouse import DuckDBLimits
from tideline.demo.sinks.http_sink import HttpSink

pytestmark = pytest.mark.slow  # every test sends through the real engine to a sink, tick after tick

SECRET = "journey-test-webhook-secret"
LIMITS = DuckDBLimits.resolve(env={})
CATALOG = Catalog.default()
T0 = dt.datetime(2026, 3, 10, 10, 0)


def at(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


# --- the warehouse ------------------------------------------------------------------------------------

CUSTOMERS = [
    # id, sms_opt_in, timezone
    ("c1", True, "UTC"),
    ("c2", True, "UTC"),
    ("c3", False, "UTC"),  # no SMS consent
    ("c4", True, "Europe/Berlin"),
    ("c5", True, "UTC"),
]


def make_warehouse(path: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    con.execute("create schema marts; create schema intermediate")
    con.execute(
        """create table marts.dim_customers (customer_id varchar, phone varchar, first_name varchar,
               timezone varchar, email_opt_in boolean, sms_opt_in boolean, push_opt_in boolean,
               email_consent_at timestamp, sms_consent_at timestamp, push_consent_at timestamp)"""
    )
    for cid, sms, zone in CUSTOMERS:
        con.execute(
            "insert into marts.dim_customers values (?, ?, ?, ?, true, ?, false, null, null, null)",
            [cid, f"+44700000{cid[1:]}", cid.upper(), zone, sms],
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
    return con


def event(con: duckdb.DuckDBPyConnection, eid: str, cid: str, kind: str, when: dt.datetime) -> None:
    con.execute(
        "insert into intermediate.int_events_stitched values (?, ?, ?, ?, null, null, null, null, null, null)",
        [eid, cid, kind, when],
    )


def order(con: duckdb.DuckDBPyConnection, oid: str, cid: str, when: dt.datetime) -> None:
    con.execute(
        "insert into intermediate.int_orders_resolved values (?, ?, ?, true, 50, 'web', null, false, 'completed')",
        [oid, cid, when],
    )


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    with HttpSink(secret=SECRET) as s:
        yield s


@pytest.fixture
def deliver(tmp_path: Path, sink: HttpSink) -> EngineDelivery:
    path = tmp_path / "activation.yml"
    destination = {"type": "webhook", "url": sink.url("/sms"), "secret_env": "TEST_JOURNEY_SECRET"}
    policies = {
        "quiet_hours": {"start": 0, "end": 0},
        "frequency_caps": {"marketing": {"sms": {"max": 10, "days": 7}}},
    }
    path.write_text(json.dumps({"destinations": {"sms": destination}, "policies": policies}))
    config = load_config(path, env={"TEST_JOURNEY_SECRET": SECRET})
    return EngineDelivery(config, tmp_path / "raw", LIMITS, workers=1)


def cond(raw: object) -> object:
    return parse_condition(raw, source="test", path="where")


def sms(step_id: str, nxt: str, text: str = "hello") -> Step:
    return Step(step_id, Send("sms", "sms", {"phone": "phone"}, {"text": text}), nxt)


def cart_journey(**changes: object) -> Journey:
    """checkout_started -> wait 1h -> sms -> wait 1 day -> sms -> end; exit on an order since entry;
    goal: an order within 7 days."""
    entry = Entry(EventTrigger(cond({"event": {"type": "checkout_started"}})))
    steps = (
        Step("hour", Wait(duration=dt.timedelta(hours=1)), "reminder"),
        sms("reminder", "day"),
        Step("day", Wait(duration=dt.timedelta(days=1)), "last_call"),
        sms("last_call", END, "last call"),
    )
    fields = {
        "name": "cart",
        "source": "test/cart.yml",
        "entry": entry,
        "steps": steps,
        "goal": Goal(cond({"order": {"since": "entry"}}), within_days=7),
        "exit_when": cond({"order": {"since": "entry"}}),
        "canonical": {"steps": ["hour", "reminder", "day", "last_call"]},
    }
    fields.update(changes)
    return Journey(**fields)  # type: ignore[arg-type]


def tick(con, journeys, clock, deliver):  # noqa: ANN001, ANN201
    return {r.journey: r for r in run_ticks(con, journeys, clock, deliver=deliver, catalog=CATALOG)}


def sent_to(sink: HttpSink) -> list[str]:
    return sorted(r["customer_id"] for q in sink.requests_for("/sms") for r in q.body["records"])


def entries(con: duckdb.DuckDBPyConnection) -> dict[str, tuple]:
    rows = con.execute(
        "select customer_id, current_node, exit_reason, converted_at is not null from tideline_journeys.entries"
    ).fetchall()
    return {r[0]: r[1:] for r in rows}


# --- tests --------------------------------------------------------------------------------------------


def test_a_cart_journey_waits_sends_and_lets_buyers_and_the_unconsented_go(
    tmp_path: Path, sink: HttpSink, deliver: EngineDelivery
) -> None:
    con = make_warehouse(tmp_path / "w.duckdb")
    for i, (cid, _, _) in enumerate(CUSTOMERS[:3], start=1):
        event(con, f"e{i}", cid, "checkout_started", at(0))
    event(con, "e9", "c4", "product_view", at(0))  # not the trigger
    order(con, "o2", "c2", at(0.5))  # c2 buys before the reminder
    journey = cart_journey()

    first = tick(con, [journey], at(0.25), deliver)["cart"]
    assert (first.entered, first.sent) == (3, 0)  # everyone waits the hour
    assert {k: v[0] for k, v in entries(con).items()} == {"c1": "hour", "c2": "hour", "c3": "hour"}

    second = tick(con, [journey], at(1.5), deliver)["cart"]
    assert second.entered == 0  # the same events never enter anyone twice
    assert entries(con)["c2"] == (None, "converted", True)  # the goal ended c2's journey
    assert sent_to(sink) == ["c1"]  # c3 has no SMS consent: skipped and moved on
    assert second.by_reason["skipped:no_consent"] == 1
    assert {k: v[0] for k, v in entries(con).items()} == {"c1": "day", "c2": None, "c3": "day"}

    again = tick(con, [journey], at(1.75), deliver)["cart"]
    assert (again.sent, sent_to(sink)) == (0, ["c1"])  # nothing is due: nothing sent twice

    order(con, "o1", "c1", at(20))  # c1 buys during the day's wait
    last = tick(con, [journey], at(26), deliver)["cart"]
    assert sent_to(sink) == ["c1"]  # c1 left (converted) before the last call
    assert entries(con)["c1"] == (None, "converted", True)
    assert entries(con)["c3"] == (None, "completed", False)
    assert last.by_reason["exited:converted"] == 1
    steps = con.execute(
        "select from_node, to_node, outcome from tideline_journeys.steps where customer_id = 'c3' order by seq"
    ).fetchall()
    assert steps == [
        (None, "hour", "entered"),
        ("hour", "reminder", "waited"),
        ("reminder", "day", "skipped"),
        ("day", "last_call", "waited"),
        ("last_call", None, "skipped"),
    ]


def test_exit_conditions_are_checked_before_every_action(
    tmp_path: Path, sink: HttpSink, deliver: EngineDelivery
) -> None:
    con = make_warehouse(tmp_path / "w.duckdb")
    event(con, "e1", "c1", "checkout_started", at(0))
    event(con, "e5", "c5", "checkout_started", at(0))
    # a goal-less journey: only the exit condition (a product view since entry) can stop c5
    journey = cart_journey(goal=None, exit_when=cond({"event": {"type": "product_view", "since": "entry"}}))
    tick(con, [journey], at(0.1), deliver)
    event(con, "e6", "c5", "product_view", at(0.5))
    tick(con, [journey], at(1.2), deliver)
    assert sent_to(sink) == ["c1"]
    assert entries(con)["c5"] == (None, "exit_condition", False)


def test_holdout_entries_exit_at_once_and_their_conversions_are_measured(
    tmp_path: Path, sink: HttpSink, deliver: EngineDelivery
) -> None:
    con = make_warehouse(tmp_path / "w.duckdb")
    con.execute(
        "insert into marts.dim_customers select 'h' || i, '+4471' || i, 'H', 'UTC', true, true, false, "
        "null, null, null from range(40) t(i)"
    )
    for i in range(40):
        event(con, f"h{i}", f"h{i}", "checkout_started", at(0))
    journey = cart_journey(
        entry=Entry(EventTrigger(cond({"event": {"type": "checkout_started"}})), holdout=0.3)
    )
    held = {f"h{i}" for i in range(40) if stable_unit("journey|cart", f"h{i}") < 0.3}
    assert 0 < len(held) < 40
    first = tick(con, [journey], at(0.1), deliver)["cart"]
    assert (first.entered, first.held_out) == (40, len(held))
    buyer = sorted(held)[0]
    order(con, "oh", buyer, at(3))
    tick(con, [journey], at(1.5), deliver)
    tick(con, [journey], at(4), deliver)
    assert set(sent_to(sink)) == {f"h{i}" for i in range(40)} - held  # the holdout got nothing
    rows = entries(con)
    assert rows[buyer] == (None, "holdout", True)  # its conversion counts for the lift
    assert {c for c, r in rows.items() if r[1] == "holdout"} == held


def test_branch_split_and_tag_route_each_entry_by_hand_worked_rules(
    tmp_path: Path, sink: HttpSink, deliver: EngineDelivery
) -> None:
    con = make_warehouse(tmp_path / "w.duckdb")
    for cid, _, _ in CUSTOMERS:
        event(con, f"e{cid}", cid, "checkout_started", at(0))
    order(con, "o_old", "c4", at(-48))  # bought before: the branch sends c4 to the tag
    journey = cart_journey(
        goal=None,
        exit_when=None,
        steps=(
            Step(
                "bought_before",
                Branch((BranchArm(cond({"order": {"within_days": 30}}), "vip_tag"),), otherwise="ab"),
                "ab",
            ),
            Step("vip_tag", TagAction("repeat_buyer", add=True), END),
            Step("ab", Split((SplitArm("A", 0.5, "a_msg"), SplitArm("B", 0.5, "b_msg"))), END),
            sms("a_msg", END, "A"),
            sms("b_msg", END, "B"),
        ),
    )
    result = tick(con, [journey], at(0.5), deliver)["cart"]
    arm = {c: ("A" if stable_unit("split|cart|ab", c) < 0.5 else "B") for c in ("c1", "c2", "c3", "c5")}
    ledger = dict(
        con.execute(
            "select customer_id, variant from tideline_sync.delivery_log where status = 'sent'"
        ).fetchall()
    )
    assert ledger == {c: a for c, a in arm.items() if c != "c3"}  # the arm is the ledger's variant
    assert con.execute("select customer_id, tag, added from tideline_journeys.tag_changes").fetchall() == [
        ("c4", "repeat_buyer", True)
    ]
    assert result.reached["vip_tag"] == 1 and result.reached["ab"] == 4
    assert {k: v[1] for k, v in entries(con).items()} == {c: "completed" for c, _, _ in CUSTOMERS}


def test_re_entry_rules(tmp_path: Path, sink: HttpSink, deliver: EngineDelivery) -> None:
    con = make_warehouse(tmp_path / "w.duckdb")
    short = (sms("only", END),)
    journeys = [
        cart_journey(name="never", steps=short, goal=None, exit_when=None),
        cart_journey(
            name="weekly",
            steps=short,
            goal=None,
            exit_when=None,
            entry=Entry(
                EventTrigger(cond({"event": {"type": "checkout_started"}})),
                re_entry="after",
                re_entry_after_days=7,
            ),
        ),
        cart_journey(
            name="always",
            steps=short,
            goal=None,
            exit_when=None,
            entry=Entry(EventTrigger(cond({"event": {"type": "checkout_started"}})), re_entry="always"),
        ),
    ]
    event(con, "e1", "c1", "checkout_started", at(0))
    tick(con, journeys, at(1), deliver)
    event(con, "e2", "c1", "checkout_started", at(48))  # two days later
    tick(con, journeys, at(49), deliver)
    event(con, "e3", "c1", "checkout_started", at(24 * 9))  # nine days after the first
    tick(con, journeys, at(24 * 9 + 1), deliver)
    counts = dict(
        con.execute("select journey, count(*) from tideline_journeys.entries group by 1").fetchall()
    )
    assert counts == {"never": 1, "weekly": 2, "always": 3}
    assert len(sent_to(sink)) == 6  # one message per entry


def test_finished_entries_move_to_the_history_and_still_count_for_dedup_and_re_entry(
    tmp_path: Path, sink: HttpSink, deliver: EngineDelivery
) -> None:
    """Ticks work on entries_live only: an entry leaves it once finished and done with its goal
    (converted, or the goal window over); entries (the view) still shows it, and a trigger seen
    again within the lookback after the entry was archived does not enter it twice."""
    con = make_warehouse(tmp_path / "w.duckdb")
    journeys = [
        cart_journey(
            name="again",
            steps=(sms("only", END),),
            goal=None,
            exit_when=None,
            entry=Entry(EventTrigger(cond({"event": {"type": "checkout_started"}})), re_entry="always"),
        ),
        cart_journey(name="goal", steps=(sms("only", END),), exit_when=None),  # goal: an order within 7 days
    ]
    event(con, "e1", "c1", "checkout_started", at(0))
    event(con, "e2", "c2", "checkout_started", at(0))

    def where(table: str) -> dict[str, list[str]]:
        rows = con.execute(
            f"select journey, list(customer_id order by customer_id) from tideline_journeys.{table} group by 1"
        ).fetchall()
        return dict(rows)

    tick(con, journeys, at(1), deliver)  # both enter, are sent to and finish
    assert where("entries_live") == {"again": ["c1", "c2"], "goal": ["c1", "c2"]}
    order(con, "o1", "c1", at(1.5))
    results = tick(con, journeys, at(2), deliver)  # e1 and e2 are still inside the 24-hour lookback
    assert results["again"].entered == 0 and results["again"].archived == 2  # no goal: done at once
    assert results["goal"].converted == 1 and results["goal"].archived == 0  # converted at this tick
    assert where("entries_history") == {"again": ["c1", "c2"]}
    tick(con, journeys, at(3), deliver)
    assert where("entries_history") == {"again": ["c1", "c2"], "goal": ["c1"]}  # c1 converted
    assert where("entries_live") == {"goal": ["c2"]}  # c2's goal window is open for 7 days
    results = tick(con, journeys, at(24 * 7 + 1), deliver)
    assert results["goal"].archived == 1 and where("entries_live") == {}
    assert where("entries") == {"again": ["c1", "c2"], "goal": ["c1", "c2"]}
    assert len(sent_to(sink)) == 4  # one message per entry, none again


def test_a_birthday_trigger_enters_on_the_day_every_year(
    tmp_path: Path, sink: HttpSink, deliver: EngineDelivery
) -> None:
    """date: {attribute: birthday}: the day and month of birth_date at midnight UTC plus the offset;
    29 February is the 28th in other years; one entry per customer and year; no birth date: never."""
    con = make_warehouse(tmp_path / "w.duckdb")
    con.execute("alter table marts.dim_customers add column birth_date date")
    for cid, born in [("c1", "1990-03-10"), ("c2", "2000-02-29"), ("c4", "1985-03-11")]:
        con.execute("update marts.dim_customers set birth_date = ? where customer_id = ?", [born, cid])

    def birthday(name: str, offset: int) -> Journey:
        return cart_journey(
            name=name,
            steps=(sms("greet", END),),
            goal=None,
            exit_when=None,
            entry=Entry(DateTrigger("birthday", offset), re_entry="always"),
        )

    journeys = [birthday("on_the_day", 0), birthday("day_before", -1)]
    # and a plain date attribute: 30 days after signing up
    con.execute("alter table marts.dim_customers add column signed_up_at timestamp")
    con.execute(
        "update marts.dim_customers set signed_up_at = ? where customer_id = 'c5'", [at(-24 * 30 + 0.5)]
    )
    month = cart_journey(
        name="month_in", steps=(sms("greet", END),), goal=None, exit_when=None,
        entry=Entry(DateTrigger("signed_up_at", 30)),
    )  # fmt: skip
    journeys.append(month)

    def entered() -> set[tuple[str, str, str]]:
        rows = con.execute(
            "select journey, customer_id, trigger_id from tideline_journeys.entries"
        ).fetchall()
        return set(rows)

    tick(con, journeys, at(1), deliver)  # 2026-03-10 11:00, window from 03-09 11:00
    assert entered() == {
        ("on_the_day", "c1", "birthday:2026-03-10"),
        ("day_before", "c4", "birthday:2026-03-10"),  # born on 11 March: the day before is the 10th
        ("month_in", "c5", "date:2026-03-10T10:30:00"),  # signed up 30 days before 10:30 today
    }
    tick(con, journeys, at(15), deliver)  # 2026-03-11 01:00
    assert ("on_the_day", "c4", "birthday:2026-03-11") in entered()
    tick(con, journeys, at(20), deliver)  # nothing new inside the lookback: no second entry
    assert len(entered()) == 4
    tick(con, journeys, dt.datetime(2027, 2, 28, 1), deliver)  # 2027 is not a leap year
    assert ("on_the_day", "c2", "birthday:2027-02-28") in entered()
    tick(con, journeys, dt.datetime(2027, 3, 10, 1), deliver)  # a year on: c1 again
    assert ("on_the_day", "c1", "birthday:2027-03-10") in entered()
    assert {c for j, c, _ in entered() if j != "month_in"} == {"c1", "c2", "c4"}  # c3, c5: no birth date
    assert len(sent_to(sink)) == len(entered())


def test_an_erased_customer_leaves_every_journey_and_never_enters_again(
    tmp_path: Path, sink: HttpSink, deliver: EngineDelivery
) -> None:
    con = make_warehouse(tmp_path / "w.duckdb")
    journeys = [cart_journey()]
    event(con, "e1", "c1", "checkout_started", at(0))
    event(con, "e2", "c2", "checkout_started", at(0))
    tick(con, journeys, at(0.5), deliver)  # both wait an hour
    con.execute("create schema if not exists tideline_sync")
    con.execute("create table tideline_sync.erasure_requests (customer_id varchar, requested_at timestamp)")
    con.execute("insert into tideline_sync.erasure_requests values ('c1', ?)", [at(0.6)])
    event(con, "e3", "c1", "checkout_started", at(0.7))
    tick(con, journeys, at(1.5), deliver)
    assert entries(con)["c1"] == (None, "erased", False)
    assert con.execute(
        "select count(*) from tideline_journeys.entries where customer_id = 'c1'"
    ).fetchone() == (1,)
    assert sent_to(sink) == ["c2"]


def test_a_warehouse_from_before_the_split_keeps_its_entries(tmp_path: Path) -> None:
    from activation.journeys.store import ensure_schema

    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    con.execute("create schema tideline_journeys")
    con.execute(
        """create table tideline_journeys.entries (entry_id varchar primary key, journey varchar not null,
               version varchar not null, customer_id varchar not null, trigger_id varchar not null,
               entered_at timestamp not null, holdout boolean not null, current_node varchar,
               node_entered_at timestamp, due_at timestamp, exited_at timestamp, exit_reason varchar,
               goal_until timestamp, converted_at timestamp, arm varchar, tick_id varchar not null)"""
    )
    con.execute(
        "insert into tideline_journeys.entries (entry_id, journey, version, customer_id, trigger_id, "
        "entered_at, holdout, current_node, tick_id) values ('x', 'j', 'v', 'c1', 't', ?, false, 'wait', 'k')",
        [T0],
    )
    ensure_schema(con)
    ensure_schema(con)  # idempotent
    assert con.execute("select entry_id from tideline_journeys.entries_live").fetchall() == [("x",)]
    assert con.execute("select entry_id from tideline_journeys.entries").fetchall() == [("x",)]
    kind = con.execute(
        "select table_type from information_schema.tables "
        "where table_schema = 'tideline_journeys' and table_name = 'entries'"
    ).fetchone()
    assert kind == ("VIEW",)


def test_customers_in_flight_finish_on_their_version_and_pause_holds_everyone(
    tmp_path: Path, sink: HttpSink, deliver: EngineDelivery
) -> None:
    from activation.journeys.parse import parse_journey

    def version(first_step: dict, status: str = "active") -> Journey:
        raw = {"status": status, "entry": {"event": {"type": "checkout_started"}}, "steps": [first_step]}
        return parse_journey(raw, "test/cart.yml", "cart", catalog=CATALOG)

    con = make_warehouse(tmp_path / "w.duckdb")
    event(con, "e1", "c1", "checkout_started", at(0))
    hour_then_sms = {"id": "hour", "wait": {"hours": 1}, "next": "v1_sms"}
    v1 = parse_journey(
        {
            "entry": {"event": {"type": "checkout_started"}},
            "steps": [
                hour_then_sms,
                {
                    "id": "v1_sms",
                    "send": {
                        "destination": "sms",
                        "channel": "sms",
                        "fields": {"phone": "phone"},
                        "text": "v1",
                    },
                },
            ],
        },
        "test/cart.yml",
        "cart",
        catalog=CATALOG,
    )
    tick(con, [v1], at(0.5), deliver)  # c1 waits the hour on v1
    v2_step = {
        "id": "v2_sms",
        "send": {"destination": "sms", "channel": "sms", "fields": {"phone": "phone"}, "text": "v2"},
    }
    v2, paused, archived = version(v2_step), version(v2_step, "paused"), version(v2_step, "archived")
    assert v2.version != v1.version and paused.version == v2.version  # pausing is not a new version
    event(con, "e5", "c5", "checkout_started", at(0.7))
    held = tick(con, [paused], at(2), deliver)["cart"]
    assert (held.entered, held.sent, sent_to(sink)) == (0, 0, [])  # paused: nobody enters or moves
    tick(con, [v2], at(2.5), deliver)
    versions = dict(con.execute("select customer_id, version from tideline_journeys.entries").fetchall())
    assert versions == {"c1": v1.version, "c5": v2.version}
    # c1 finished on v1 (its stored definition, parsed again), c5 went through v2
    paths = dict(
        con.execute(
            "select customer_id, string_agg(coalesce(to_node, 'end'), '>' order by seq) "
            "from tideline_journeys.steps group by 1"
        ).fetchall()
    )
    assert paths == {"c1": "hour>v1_sms>end", "c5": "v2_sms>end"}
    assert sent_to(sink) == ["c1", "c5"]
    event(con, "e2", "c2", "checkout_started", at(3))
    tick(con, [v1], at(3.5), deliver)  # back on v1: c2 enters and waits the hour
    tick(con, [archived], at(30), deliver)
    assert entries(con)["c2"] == (None, "archived", False)  # archived: everyone in flight leaves


def test_a_wait_until_a_time_of_day_uses_the_customers_time_zone(
    tmp_path: Path, sink: HttpSink, deliver: EngineDelivery
) -> None:
    con = make_warehouse(tmp_path / "w.duckdb")
    event(con, "e1", "c1", "checkout_started", at(0))  # UTC
    event(con, "e4", "c4", "checkout_started", at(0))  # Europe/Berlin (UTC+1 in March)
    journey = cart_journey(
        goal=None,
        exit_when=None,
        steps=(Step("nine", Wait(until_time=dt.time(9, 0)), "go"), sms("go", END)),
    )
    tick(con, [journey], at(0.5), deliver)  # 10:30 UTC: 09:00 has passed in both zones today
    due = dict(con.execute("select customer_id, due_at from tideline_journeys.entries").fetchall())
    assert due == {"c1": dt.datetime(2026, 3, 11, 9, 0), "c4": dt.datetime(2026, 3, 11, 8, 0)}
    tick(con, [journey], dt.datetime(2026, 3, 11, 8, 30), deliver)
    assert sent_to(sink) == ["c4"]


def test_a_wait_for_an_event_goes_on_when_it_happens_or_times_out(
    tmp_path: Path, sink: HttpSink, deliver: EngineDelivery
) -> None:
    con = make_warehouse(tmp_path / "w.duckdb")
    event(con, "e1", "c1", "checkout_started", at(0))
    event(con, "e2", "c2", "checkout_started", at(0))
    journey = cart_journey(
        goal=None,
        exit_when=None,
        steps=(
            Step(
                "viewed",
                Wait(
                    event=cond({"event": {"type": "product_view"}}),
                    timeout=dt.timedelta(hours=4),
                    timed_out="nudge",
                ),
                "thanks",
            ),
            sms("thanks", END, "thanks"),
            sms("nudge", END, "nudge"),
        ),
    )
    tick(con, [journey], at(0.5), deliver)
    event(con, "v1", "c1", "product_view", at(1))
    event(con, "v0", "c2", "product_view", at(-1))  # before the wait began: does not count
    tick(con, [journey], at(1.5), deliver)
    tick(con, [journey], at(5), deliver)
    paths = dict(
        con.execute(
            "select customer_id, string_agg(to_node, '>' order by seq) from tideline_journeys.steps "
            "where to_node is not null group by 1"
        ).fetchall()
    )
    assert paths == {"c1": "viewed>thanks", "c2": "viewed>nudge"}


def test_a_simulation_equals_what_live_ticks_do_on_the_same_history(
    tmp_path: Path, sink: HttpSink, deliver: EngineDelivery
) -> None:
    """The same history, ticked hourly live (sending to the sink) and simulated (sending nothing):
    the same entries, steps reached, messages, skips, conversions and exits."""
    from dataclasses import replace

    from activation.journeys.simulate import simulate

    con = make_warehouse(tmp_path / "w.duckdb")
    for cid, _, _ in CUSTOMERS:
        event(con, f"e{cid}", cid, "checkout_started", at(1))
    order(con, "o2", "c2", at(2.5))  # converts during the hour's wait
    order(con, "o5", "c5", at(20))  # converts during the day's wait
    journey = cart_journey()
    start, end = at(0), at(40)
    sim = simulate(con, journey, start, end, deliver=replace(deliver, dry_run=True), catalog=CATALOG)
    assert (
        sent_to(sink) == []
        and not con.execute(
            "select count(*) from information_schema.tables where table_schema = 'journey_sim'"
        ).fetchone()[0]
    )

    clock = start
    while clock <= end:
        tick(con, [journey], clock, deliver)
        clock += dt.timedelta(hours=1)
    live_exits = dict(
        con.execute(
            "select exit_reason, count(*) from tideline_journeys.entries where exited_at is not null group by 1"
        ).fetchall()
    )
    # by hand: all five enter at the 02:00 tick (their events at 01:00); c2 converts (order 02:30)
    # before the reminder at 03:00, which goes to c1, c4, c5 (c3 has no SMS consent); c5 converts
    # (order at 20:00) during the day's wait; the last call at 27:00 goes to c1 and c4
    assert (sim.entered, sim.held_out, sim.converted, sim.in_flight) == (5, 0, 2, 0)
    assert sim.exited == live_exits == {"completed": 3, "converted": 2}
    assert sim.messages == {"reminder": 3, "last_call": 2}
    assert sent_to(sink) == ["c1", "c1", "c4", "c4", "c5"]
    assert sim.skipped == {"last_call: no_consent": 1, "reminder: no_consent": 1}
    assert sim.reached == {"hour": 5, "reminder": 4, "day": 4, "last_call": 3}


def test_an_event_and_an_order_appended_to_the_landing_zone_reach_the_next_tick_without_a_dbt_build(
    tmp_path: Path, sink: HttpSink, deliver: EngineDelivery
) -> None:
    """The live feed: a checkout the shop appended a minute ago enters the journey at the next tick,
    and an order appended later makes the customer leave before the reminder."""
    con = make_warehouse(tmp_path / "w.duckdb")
    raw = tmp_path / "raw"
    shop = raw / "events" / "shop" / "today.jsonl"
    shop.parent.mkdir(parents=True)

    def append(path: Path, record: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")

    for cid in ("c1", "c2"):
        append(
            shop,
            {
                "event_id": f"live-{cid}",
                "customer_id": cid,
                "event_type": "checkout_started",
                "occurred_at": at(0).isoformat() + "Z",
            },
        )
    journey = cart_journey(goal=None)
    first = run_ticks(con, [journey], at(0.02), deliver=deliver, catalog=CATALOG, raw_dir=raw)[0]
    assert first.entered == 2  # one minute after the events, no dbt build in between
    append(
        raw / "commerce" / "orders" / "shop" / "today.jsonl",
        {
            "order_id": "live-o1",
            "customer_id": "c1",
            "ordered_at": at(0.5).isoformat() + "Z",
            "amount": "20.00",
            "status": "completed",
        },
    )
    run_ticks(con, [journey], at(1.1), deliver=deliver, catalog=CATALOG, raw_dir=raw)
    assert sent_to(sink) == ["c2"]
    assert entries(con)["c1"] == (None, "exit_condition", False)


def test_consent_revoked_between_two_steps_stops_the_second(
    tmp_path: Path, sink: HttpSink, deliver: EngineDelivery
) -> None:
    """An unsubscribe the receiver recorded after the first message (a consent line in the landing
    zone, no dbt build in between) stops the second."""
    con = make_warehouse(tmp_path / "w.duckdb")
    event(con, "e1", "c1", "checkout_started", at(0))
    event(con, "e2", "c2", "checkout_started", at(0))
    journey = cart_journey(goal=None, exit_when=None)
    tick(con, [journey], at(0.1), deliver)
    tick(con, [journey], at(1.5), deliver)
    assert sent_to(sink) == ["c1", "c2"]
    consents = deliver.raw_dir / "crm" / "consents" / "receiver-1.jsonl"
    consents.parent.mkdir(parents=True)
    revoked = {"customer_id": "c1", "channel": "sms", "status": "revoked", "consented_at": at(2).isoformat()}
    consents.write_text(json.dumps(revoked) + "\n")
    last = tick(con, [journey], at(27), deliver)["cart"]
    assert sent_to(sink) == ["c1", "c2", "c2"]
    assert last.by_reason["skipped:no_consent"] == 1


def test_sync_and_notify_steps_deliver_once_through_their_destinations(
    tmp_path: Path, sink: HttpSink
) -> None:
    """A sync step upserts the customer to the CRM; a notify step hands each entry to the staff
    notifications, which route it (here: all to the step's destination; routing by owner is
    tests/integration/test_staff_notifications.py) and post one signed message carrying ids only;
    both once per entry, whatever ticks follow. Without a staff notifications file the notify step
    skips its entries with the reason."""
    from activation.journeys.spec import Notify, SyncAction
    from activation.staff.config import parse_staff_config

    path = tmp_path / "activation.yml"
    destinations = {
        "crm": {
            "type": "crm",
            "base_url": sink.url("/crm"),
            "token_env": "TEST_CRM_TOKEN",
            "object": "contacts",
        },
        "staff": {"type": "webhook", "url": sink.url("/alerts"), "secret_env": "TEST_JOURNEY_SECRET"},
    }
    path.write_text(
        json.dumps({"destinations": destinations, "policies": {"quiet_hours": {"start": 0, "end": 0}}})
    )
    config = load_config(path, env={"TEST_JOURNEY_SECRET": SECRET, "TEST_CRM_TOKEN": "crm-test-token"})
    staff = parse_staff_config(
        {"destinations": {"team": "staff"}, "link_base_url": "http://127.0.0.1:3000/customers",
         "quiet_hours": {"start": 0, "end": 0}, "rules": {}},
        "staff.yml",
        config.destinations,
    )  # fmt: skip
    deliver = EngineDelivery(config, tmp_path / "raw", LIMITS, workers=1, staff=staff)
    con = make_warehouse(tmp_path / "w.duckdb")
    event(con, "e1", "c1", "checkout_started", at(0))
    event(con, "e3", "c3", "checkout_started", at(0))  # no SMS consent: irrelevant to a CRM sync
    journey = cart_journey(
        goal=None,
        exit_when=None,
        steps=(
            Step("to_crm", SyncAction("crm", {"phone": "phone", "firstname": "first_name"}), "tell"),
            Step("tell", Notify("staff", "a cart was abandoned"), END),
        ),
    )
    first = tick(con, [journey], at(0.5), deliver)["cart"]
    tick(con, [journey], at(0.6), deliver)
    upserts = [r for q in sink.requests_for("/crm/contacts/batch/upsert") for r in q.body["inputs"]]
    alerts = [r for q in sink.requests_for("/alerts") for r in q.body["records"]]
    assert sorted(u["properties"]["firstname"] for u in upserts) == ["C1", "C3"]
    assert sorted(a["fields"]["customer_id"] for a in alerts) == ["c1", "c3"]
    assert all("a cart was abandoned" in a["fields"]["text"] for a in alerts)
    assert all(a["fields"]["link"].endswith(a["fields"]["customer_id"]) for a in alerts)
    assert all("+44" not in json.dumps(a) for a in alerts)  # ids and words, never personal data
    assert first.sent == 4 and first.by_reason == {"exited:completed": 2}
    made = con.execute(
        "select rule, event_key, status from tideline_staff.notifications order by 2"
    ).fetchall()
    entry_ids = [
        r[0]
        for r in con.execute("select entry_id from tideline_journeys.entries order by customer_id").fetchall()
    ]
    assert sorted(made) == sorted(("journey:cart:tell", e, "sent") for e in entry_ids)

    # no staff notifications file: the step's entries move on, skipped with the reason
    event(con, "e2", "c2", "checkout_started", at(1))
    bare = EngineDelivery(config, tmp_path / "raw", LIMITS, workers=1)
    skipped = tick(con, [journey], at(1.5), bare)["cart"]
    assert skipped.by_reason["skipped:staff:not_configured"] == 1
    assert len([r for q in sink.requests_for("/alerts") for r in q.body["records"]]) == 2


def test_a_test_send_goes_to_the_test_accounts_only_and_is_never_a_customers_message(
    tmp_path: Path, sink: HttpSink, deliver: EngineDelivery
) -> None:
    """send-test renders each message step for the internal accounts, through the real destination:
    no customer gets it, no entry is made, the ledger marks it test:, and asking again sends again."""
    from activation.journeys.testsend import send_test

    con = make_warehouse(tmp_path / "w.duckdb")
    event(con, "e1", "c1", "checkout_started", at(0))
    journey = cart_journey()
    accounts = [{"phone": "+447700900001", "first_name": "QA"}, {"phone": "+447700900002"}]
    first = send_test(con, journey, accounts, deliver, at(0.5), list_name="internal", steps=("reminder",))
    again = send_test(con, journey, accounts, deliver, at(0.6), list_name="internal")
    records = [r for q in sink.requests_for("/sms") for r in q.body["records"]]
    assert first == {"reminder": {"sent": 2, "skipped": {}, "failed": 0}}
    assert set(again) == {"reminder", "last_call"} and all(v["sent"] == 2 for v in again.values())
    assert sorted(r["fields"]["phone"] for r in records) == ["+447700900001"] * 3 + ["+447700900002"] * 3
    assert {r["customer_id"] for r in records} == {"test:internal:1", "test:internal:2"}
    campaigns = con.execute("select distinct campaign from tideline_sync.delivery_log").fetchall()
    assert campaigns == [("test:journey:cart",)]
    assert con.execute("select count(*) from tideline_journeys.entries").fetchone()[0] == 0
    # the accounts' and the queue's contact fields are not left in the warehouse
    left = con.execute(
        "select table_name from information_schema.tables where table_schema = 'tideline_journeys' "
        "and table_name in ('test_accounts', 'test_queue', 'send_queue')"
    ).fetchall()
    assert left == []
