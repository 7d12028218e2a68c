"""Staff notifications on a hand-made warehouse, delivered to the project's real loopback sinks (the
HTTP sink checks every webhook's signature; aiosmtpd for email): each routing option worked out by
hand, the team fallback and its reason in words, no notification for a customer already handled,
exactly once across reruns, quiet hours, the daily digest, and a dead recipient that blocks nobody.

The people (dim_staff) and links (customer_owners), with what each route gives:

    s_mgr      manager of s_a, s_b and s_nohandle       chat handle
    s_a, s_b   active                                     chat handles
    s_old      inactive                                   chat handle
    s_nohandle active, no usable handle
    s_nomgr    active, no manager                         chat handle

    customer  links (linked on)                            owner      first_owner  all_owners  manager
    c_1       s_a (01-01), s_b (06-01)                     s_b        s_a          s_a, s_b    s_mgr
    c_2       nobody                                       team       team         team        team
    c_3       s_old (inactive)                             team       team         team        team
    c_4       s_nohandle                                   team       team         team        s_mgr
    c_5       s_nomgr                                      s_nomgr    s_nomgr      s_nomgr     team
    c_6       s_a, but already handled (sales_accepted)    -          -            -           -
    c_7       s_old (01-15), s_b (02-01), s_a (11-01)      s_a        s_b          s_a, s_b    s_mgr

All reached MQL on 2026-12-05 (c_8 on 2026-10-01: outside the 7-day window, never notified).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import pytest

from activation.staff.config import StaffConfigError
from activation.staff.run import run_staff_notifications
from tests.staff_fixtures import (
    AS_OF,
    SECRET,
    activation_config,
    add_lead,
    add_owners,
    add_staff,
    make_warehouse,
    sender,
    staff_config,
)
from tideline.demo.sinks.http_sink import HttpSink
from tideline.demo.sinks.smtp_sink import SmtpSink

NOON = dt.datetime(2026, 12, 7, 12, 0)

EXPECTED = {
    "owner": {
        ("c_1", "s_b"),
        ("c_2", None),
        ("c_3", None),
        ("c_4", None),
        ("c_5", "s_nomgr"),
        ("c_7", "s_a"),
    },
    "first_owner": {
        ("c_1", "s_a"),
        ("c_2", None),
        ("c_3", None),
        ("c_4", None),
        ("c_5", "s_nomgr"),
        ("c_7", "s_b"),
    },
    "all_owners": {
        ("c_1", "s_a"),
        ("c_1", "s_b"),
        ("c_2", None),
        ("c_3", None),
        ("c_4", None),
        ("c_5", "s_nomgr"),
        ("c_7", "s_a"),
        ("c_7", "s_b"),
    },
    "manager": {
        ("c_1", "s_mgr"),
        ("c_2", None),
        ("c_3", None),
        ("c_4", "s_mgr"),
        ("c_5", None),
        ("c_7", "s_mgr"),
    },
    "team": {("c_1", None), ("c_2", None), ("c_3", None), ("c_4", None), ("c_5", None), ("c_7", None)},
}


@pytest.fixture
def http():
    with HttpSink(secret=SECRET) as sink:
        yield sink


def _world(http: HttpSink, path: Path | str = ":memory:", zones: dict[str, str] | None = None):
    con = make_warehouse(path)
    zones = zones or {}

    def chat(s):
        return http.url(f"/staff/{s}")

    add_staff(
        con,
        [
            ("s_mgr", None, chat("s_mgr"), "webhook", zones.get("s_mgr", "UTC"), True),
            ("s_a", "s_mgr", chat("s_a"), "webhook", zones.get("s_a", "UTC"), True),
            ("s_b", "s_mgr", chat("s_b"), "webhook", zones.get("s_b", "UTC"), True),
            ("s_old", "s_mgr", chat("s_old"), "webhook", "UTC", False),
            ("s_nohandle", "s_mgr", None, None, "UTC", True),
            ("s_nomgr", None, chat("s_nomgr"), "webhook", "UTC", True),
        ],
    )
    add_owners(
        con,
        [
            ("c_1", "s_a", "2026-01-01"),
            ("c_1", "s_b", "2026-06-01"),
            ("c_3", "s_old", "2026-03-01"),
            ("c_4", "s_nohandle", "2026-03-01"),
            ("c_5", "s_nomgr", "2026-03-01"),
            ("c_6", "s_a", "2026-03-01"),
            ("c_7", "s_old", "2026-01-15"),
            ("c_7", "s_b", "2026-02-01"),
            ("c_7", "s_a", "2026-11-01"),
        ],
    )
    for c in ("c_1", "c_2", "c_3", "c_4", "c_5", "c_7"):
        add_lead(con, c, "2026-12-05", 74.0)
    add_lead(con, "c_6", "2026-12-05", 80.0, crm_stage="sales_accepted")
    add_lead(con, "c_8", "2026-10-01", 55.0)
    return con


def _received(http: HttpSink) -> set[tuple[str, str | None]]:
    """(customer, staff id or None for the team) of every processed webhook record."""
    out = set()
    for request in http.requests:
        if request.status != 200 or request.duplicate:
            continue
        who = request.path.rsplit("/", 1)[1]
        for record in request.body["records"]:
            out.add((record["fields"]["customer_id"], None if who == "team" else who))
    return out


def _run(con, http, tmp_path, rules, now=NOON, smtp=None, **top):
    config = activation_config(http.base_url, smtp, max_attempts=top.pop("max_attempts", 5))
    staff = staff_config(config, rules, **top)
    return run_staff_notifications(con, staff, sender(config, tmp_path), AS_OF, now)


@pytest.mark.parametrize("route", sorted(EXPECTED))
def test_each_route_reaches_the_hand_worked_recipients(http, tmp_path, route):
    con = _world(http)
    result = _run(con, http, tmp_path, {"lead_mql": {"route": route}})
    assert _received(http) == EXPECTED[route]
    assert result.by_status == {"sent": len(EXPECTED[route])}
    rows = con.execute(
        "select customer_id, staff_id, recipient, fell_back from tideline_staff.notifications"
    ).fetchall()
    assert {(c, s) for c, s, _, _ in rows} == EXPECTED[route]
    # a route of team is the team channel by choice, not a fallback
    assert all(fell_back == (staff_id is None and route != "team") for _, staff_id, _, fell_back in rows)


def test_fallback_names_the_reason_and_messages_carry_no_personal_data(http, tmp_path):
    con = _world(http)
    _run(con, http, tmp_path, {"lead_mql": {"route": "manager"}})
    reasons = dict(
        con.execute(
            "select customer_id, fallback_reason from tideline_staff.notifications where fell_back"
        ).fetchall()
    )
    assert reasons == {
        "c_2": "no employee is linked to the customer",
        "c_3": "no active employee is linked to the customer",
        "c_5": "the owner s_nomgr has no manager",
    }
    (team,) = [r for r in http.requests_for("/staff/team") if r.status == 200]
    by_customer = {rec["fields"]["customer_id"]: rec["fields"] for rec in team.body["records"]}
    assert by_customer["c_2"]["text"] == (
        "Customer c_2 reached MQL on 2026-12-05 (score 74.0: Viewed pricing 2 days ago (+22 of 25); "
        "Registered for a webhook today (+25 of 25)). For the team: no employee is linked to the customer"
    ).replace("webhook today", "webinar today")
    assert by_customer["c_2"]["link"] == "https://crm.corp.example/customers/c_2"
    everything = b"".join(r.raw for r in http.requests)
    assert b"corp.example/customers" in everything
    assert b"@corp.example" not in everything and b"Person " not in everything  # no emails, no names


def test_no_notification_for_a_customer_already_handled(http, tmp_path):
    con = _world(http)
    _run(con, http, tmp_path, {"lead_mql": {"route": "owner"}, "new_lead_assigned": {"route": "owner"}})
    about = {
        c for (c,) in con.execute("select distinct customer_id from tideline_staff.notifications").fetchall()
    }
    assert "c_6" not in about and "c_8" not in about
    assert ("c_6", "s_a") not in _received(http)


def test_handled_customers_are_notified_when_the_rule_says_so(http, tmp_path):
    con = _world(http)
    _run(con, http, tmp_path, {"lead_mql": {"route": "owner", "skip_handled": False}})
    assert ("c_6", "s_a") in _received(http)


def test_a_rerun_sends_nothing_twice(http, tmp_path):
    con = _world(http)
    rules = {"lead_mql": {"route": "all_owners"}}
    _run(con, http, tmp_path, rules)
    posts = len(http.requests)
    again = _run(con, http, tmp_path, rules, now=NOON + dt.timedelta(hours=1))
    assert again.planned.created == 0 and again.planned.candidates == 6  # c_1..c_5 and c_7, found again
    assert len(http.requests) == posts
    assert all(n == 1 for n in http.key_counts().values()) and len(http.key_counts()) == len(
        EXPECTED["all_owners"]
    )


def test_quiet_hours_hold_a_notification_until_they_end(http, tmp_path):
    """s_a is in Berlin with quiet hours 20-8: at 19:30 UTC (20:30 there) c_7's notification waits
    until 08:00 Berlin = 07:00 UTC; the others (UTC, 19:30: not quiet yet) go at once."""
    con = _world(http, zones={"s_a": "Europe/Berlin"})
    rules = {"lead_mql": {"route": "owner"}}
    quiet = {"quiet_hours": {"start": 20, "end": 8}}
    evening = dt.datetime(2026, 12, 7, 19, 30)
    first = _run(con, http, tmp_path, rules, now=evening, **quiet)
    assert first.delivered.deferred == 1
    assert ("c_7", "s_a") not in _received(http) and ("c_2", None) in _received(http)
    status, due = con.execute(
        "select status, due_at from tideline_staff.notifications where customer_id = 'c_7'"
    ).fetchone()
    assert (status, due) == ("deferred", dt.datetime(2026, 12, 8, 7, 0))
    _run(con, http, tmp_path, rules, now=dt.datetime(2026, 12, 8, 6, 59), **quiet)
    assert ("c_7", "s_a") not in _received(http)
    _run(con, http, tmp_path, rules, now=dt.datetime(2026, 12, 8, 7, 0), **quiet)
    assert ("c_7", "s_a") in _received(http)
    assert con.execute(
        "select status from tideline_staff.notifications where customer_id = 'c_7'"
    ).fetchone() == ("sent",)


def test_daily_digest_is_one_message_per_employee_and_day_sent_once(http, tmp_path):
    con = _world(http)
    rules = {"lead_mql": {"route": "all_owners", "digest": True}}
    _run(con, http, tmp_path, rules)  # noon: c_1 and c_7 wait for the digests of s_a and s_b
    assert not http.requests_for("/staff/s_a") and not http.requests_for("/staff/s_b")
    assert http.requests_for("/staff/team")  # the team's fallbacks are not digested
    _run(con, http, tmp_path, rules, now=dt.datetime(2026, 12, 7, 23, 59))
    assert not http.requests_for("/staff/s_a")
    for hour in (0, 1):  # the day is over: one digest each, and a later run sends none again
        _run(con, http, tmp_path, rules, now=dt.datetime(2026, 12, 8, hour, 5))
    (digest,) = [r for r in http.requests_for("/staff/s_a") if r.status == 200]
    (record,) = digest.body["records"]
    assert record["fields"]["rule"] == "digest" and record["fields"]["event"] == "2026-12-07"
    assert record["fields"]["text"].startswith(
        "Daily digest for s_a, 2026-12-07: 2 notification(s)\n- Customer c_1"
    )
    assert "c_7" in record["fields"]["text"]
    assert len([r for r in http.requests_for("/staff/s_b") if r.status == 200]) == 1
    members = con.execute(
        "select status, count(*) from tideline_staff.notifications where via_digest group by 1"
    ).fetchall()
    assert members == [("sent", 5)]  # c_1 and c_7 to s_a and s_b, c_5 to s_nomgr


def test_email_handles_get_an_email_and_chat_handles_a_webhook(http, tmp_path):
    con = _world(http)
    con.execute(
        "update marts.dim_staff set notify_handle = 's_b@corp.example', notify_kind = 'email' where staff_id = 's_b'"
    )
    with SmtpSink() as smtp:
        _run(con, http, tmp_path, {"lead_mql": {"route": "owner"}}, smtp=smtp.address)
        (mail,) = smtp.wait_for(1)
        assert mail["To"] == "s_b@corp.example"
        assert mail["Subject"] == "Tideline: lead_mql - customer c_1"
        body = mail.get_body(("plain",)).get_content()
        assert "Customer c_1 reached MQL on 2026-12-05" in body
        assert "https://crm.corp.example/customers/c_1" in body
    assert ("c_1", "s_b") not in _received(http) and ("c_7", "s_a") in _received(http)


def test_a_dead_recipient_blocks_nobody_and_is_retried_then_dead(http, tmp_path):
    con = _world(http)
    con.execute("update marts.dim_staff set notify_handle = 'http://127.0.0.1:9/dead' where staff_id = 's_b'")
    rules = {"lead_mql": {"route": "owner"}}
    _run(con, http, tmp_path, rules, max_attempts=2)
    assert ("c_7", "s_a") in _received(http) and ("c_2", None) in _received(http)
    assert con.execute(
        "select status from tideline_staff.notifications where customer_id = 'c_1'"
    ).fetchone() == ("failed",)
    _run(con, http, tmp_path, rules, now=NOON + dt.timedelta(hours=1), max_attempts=2)
    _run(con, http, tmp_path, rules, now=NOON + dt.timedelta(hours=2), max_attempts=2)
    status, attempts = con.execute(
        "select status, attempts from tideline_staff.notifications where customer_id = 'c_1'"
    ).fetchone()
    assert status == "dead" and attempts >= 2
    assert Counter(http.key_counts().values()) == Counter({1: len(EXPECTED["owner"]) - 1})


def test_journey_notify_entries_handed_over_are_routed_and_sent_once(http, tmp_path):
    """enqueue_journey (for the journey notify step): each entry becomes a notification with rule
    journey:<journey>:<step> and event key the entry id, routed by the step's route."""
    from activation.staff.deliver import deliver_due
    from activation.staff.planner import enqueue_journey

    con = _world(http)
    con.execute(
        """create table main.handed as select * from (values
               ('e1', 'c_1', 'cart', 'tell_owner', 'A cart over 500 was left', 'owner'),
               ('e2', 'c_2', 'cart', 'tell_owner', 'A cart over 500 was left', 'owner'),
               ('e3', 'c_7', 'cart', 'tell_boss', '', 'manager'))
           as t(entry_id, customer_id, journey, step, message, route)"""
    )
    config = activation_config(http.base_url)
    staff = staff_config(config, {})
    assert enqueue_journey(con, staff, "main.handed", NOON) == 3
    assert enqueue_journey(con, staff, "main.handed", NOON) == 0  # handed over twice: made once
    deliver_due(con, staff, sender(config, tmp_path), NOON)
    assert _received(http) == {("c_1", "s_b"), ("c_2", None), ("c_7", "s_mgr")}
    rows = con.execute(
        "select rule, event_key, message from tideline_staff.notifications where customer_id = 'c_1'"
    ).fetchall()
    assert rows == [
        (
            "journey:cart:tell_owner",
            "e1",
            "Journey cart, step tell_owner: customer c_1: A cart over 500 was left. For s_b (owner)",
        )
    ]


def test_a_sandbox_redirects_every_chat_handle_to_its_endpoint_keeping_the_path(http, tmp_path):
    """redirect_handles_to (staging, the demo): the employees' real chat URLs are never called; each
    message reaches the sandbox under the handle's path, so it can still be told apart."""
    con = make_warehouse()
    add_staff(con, [("s_a", None, "http://127.0.0.1:9/hooks/s_a", "webhook", "UTC", True)])  # nothing listens
    add_owners(con, [("c_1", "s_a", "2026-01-01")])
    add_lead(con, "c_1", "2026-12-05", 74.0)
    result = _run(con, http, tmp_path, {"lead_mql": {"route": "owner"}}, redirect_handles_to=http.base_url)
    assert result.by_status == {"sent": 1}
    assert [r.path for r in http.requests if r.status == 200] == ["/hooks/s_a"]
    with pytest.raises(StaffConfigError, match="redirect_handles_to must be an http"):
        staff_config(activation_config(http.base_url), {}, redirect_handles_to="ftp://x")


def test_staff_notify_from_the_command_line(http, tmp_path, isolated_home, monkeypatch, capsys):
    """`tideline staff notify` runs what the asset runs, with the staff file next to the activation
    config; without one it says so."""
    import json

    import yaml

    from tideline.cli import main

    warehouse = isolated_home / "warehouse.duckdb"
    con = _world(http, warehouse)
    con.close()
    folder = tmp_path / "config"
    folder.mkdir()
    config = activation_config(http.base_url)
    (folder / "activation.yml").write_text(yaml.safe_dump({"destinations": config.destinations}))
    monkeypatch.setenv("TIDELINE_ACTIVATION_CONFIG", str(folder / "activation.yml"))
    monkeypatch.setenv("STAFF_WEBHOOK_SECRET", SECRET)
    assert main(["staff", "notify", "--as-of", str(AS_OF)]) == 2
    assert "no staff notifications file" in capsys.readouterr().err
    (folder / "staff_notifications.yml").write_text(
        yaml.safe_dump(
            {
                "link_base_url": "https://crm.corp.example/customers",
                "destinations": {"team": "staff_team", "chat": "staff_chat"},
                "quiet_hours": {"start": 0, "end": 0},
                "rules": {"lead_mql": {"route": "owner"}},
            }
        )
    )
    assert main(["staff", "notify", "--as-of", str(AS_OF), "--at", "2026-12-07T12:00:00"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["made_by_rule"] == {"lead_mql": len(EXPECTED["owner"])}
    assert out["by_status"] == {"sent": len(EXPECTED["owner"])}
    assert _received(http) == EXPECTED["owner"]
