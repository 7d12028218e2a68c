"""Staged launches end to end on loopback: a real SMTP server (aiosmtpd) receives the campaign, a
real HTTP server the staff alerts and the SMS; the real planner, policies, launch gate, ledger and
engine on a DuckDB file. The engagement marts the gate and the roll-out read (launch_gate_rates,
experiment_results) are written by hand here, with the numbers dbt would give (their SQL is tested
in tests/dbt/test_launch_marts.py and test_experiments.py).

400 customers c000..c399, all opted in, in UTC. The pilot is the customers whose
stable_unit('pilot|spring', id) < 0.25; the roll-out's test share those whose
stable_unit('rollout|spring', id) < 0.3; the holdout (10%) those whose stable_unit('holdout|spring', id)
< 0.1: the sets are computed here with the same hash, so every count below is exact.

Wilson bounds at 95% (z = 1.959964, z² = 3.841459), worked by hand:
  30 opens of 200:  p 0.15, centre (0.15 + 0.0096036) / 1.0192073 = 0.156596,
                    half 1.959964 × sqrt(0.15 × 0.85 / 200 + 3.841459 / 160000) / 1.0192073 = 0.049460,
                    lower 0.107136: below a min of 0.15 although the point estimate is exactly 0.15
  60 opens of 200:  p 0.30, centre (0.30 + 0.0096036) / 1.0192073 = 0.303769,
                    half 1.959964 × sqrt(0.30 × 0.70 / 200 + 3.841459 / 160000) / 1.0192073 = 0.063022,
                    lower 0.240747 >= 0.15: passes
  0 unsubscribes of 200: upper z² / (200 + z²) = 3.841459 / 203.841459 = 0.018845 <= 0.05: passes
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from activation.config import ActivationConfig, AlertsConfig, PolicyConfig, SyncBinding
from activation.destinations.smtp_email import SmtpEmailDestination
from activation.destinations.webhook import WebhookDestination
from activation.engine import SyncEngine
from activation.launches.actions import LaunchError, approve, decide_pilot
from activation.launches.notify import gate_failed_notifier
from activation.launches.spec import GateRule, LaunchSpec, PilotSpec, RolloutSpec
from activation.policies import stable_unit
from tideline.demo.sinks.http_sink import HttpSink
from tideline.demo.sinks.smtp_sink import SmtpSink

SECRET = "launch-test-secret-of-at-least-32-bytes"
NOON = dt.datetime(2026, 3, 2, 12, 0)
CUSTOMERS = [f"c{i:03d}" for i in range(400)]
PILOT = {c for c in CUSTOMERS if stable_unit("pilot|spring", c) < 0.25}
TEST_SHARE = {c for c in CUSTOMERS if stable_unit("rollout|spring", c) < 0.3}
HOLDOUT = {c for c in CUSTOMERS if stable_unit("holdout|spring", c) < 0.1}
GATE = (GateRule("open_rate", "min", 0.15), GateRule("unsubscribe_rate", "max", 0.05))


@pytest.fixture(autouse=True)
def tracking_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDELINE_TRACKING_SECRET", SECRET)


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpSink]:
    with SmtpSink(out_dir=tmp_path / "outbox") as server:
        yield server


@pytest.fixture
def http() -> Iterator[HttpSink]:
    with HttpSink(secret=SECRET, dedupe=False) as sink:
        yield sink


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    make_customers(con)
    yield con
    con.close()


def make_customers(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema if not exists marts")
    con.execute(
        """create table marts.dim_customers as
           select 'c' || lpad(cast(i as varchar), 3, '0') as customer_id, true as email_opt_in,
                  true as sms_opt_in, 'UTC' as timezone
           from range(400) t(i)"""
    )
    con.execute(
        """create table marts.segment as
           select customer_id, customer_id || '@example.com' as email, '+44700' || right(customer_id, 3) as phone
           from marts.dim_customers"""
    )


def email(smtp: SmtpSink) -> SmtpEmailDestination:
    host, port = smtp.address
    dest = SmtpEmailDestination.from_config(
        "email",
        {
            "host": host,
            "port": port,
            "from_address": "shop@tideline.example",
            "unsubscribe_base_url": "http://127.0.0.1:8090/u",
            "tracking_base_url": "http://127.0.0.1:8090/t",
            "retry_base_seconds": 0.01,
        },
    )
    dest.validate()
    return dest


def binding(launch: LaunchSpec | None = None, **kw) -> SyncBinding:
    return SyncBinding(
        segment="segment",
        relation="marts.segment",
        destination="email",
        mode="message",
        channel="email",
        fields={"email": "email"},
        campaign="spring",
        content={"subject": "Spring", "text": "Hello"},
        launch=launch,
        **kw,
    )


def pilot(min_delivered: int = 50) -> LaunchSpec:
    return LaunchSpec(pilot=PilotSpec(0.25, dt.timedelta(hours=24), min_delivered, GATE))


def alerts_config(http: HttpSink) -> ActivationConfig:
    staff = {"type": "webhook", "url": http.url("/alerts"), "secret_env": "ALERT_SECRET"}
    return ActivationConfig(
        {"staff_alerts": staff}, PolicyConfig(), AlertsConfig(), env={"ALERT_SECRET": SECRET}
    )


def sync(con, smtp, b, at, policies: PolicyConfig | None = None, **kw):
    return SyncEngine(con, email(smtp), b, policies or PolicyConfig(), now=at, **kw).run()


def recipients(smtp: SmtpSink) -> Counter[str]:
    return Counter(rcpt.split("@")[0] for _sender, rcpts in smtp.envelopes for rcpt in rcpts)


def gate_rates(con, delivered: int, opens: int, unsubscribes: int, sync_key: str = "segment__email") -> None:
    """marts.launch_gate_rates as dbt builds it, with these numbers for the launch."""
    con.execute(
        """create or replace table marts.launch_gate_rates (sync_key varchar, campaign varchar, channel varchar,
               content_version varchar, metric varchar, successes bigint, sample bigint, rate double,
               first_sent_at timestamp)"""
    )
    for metric, k, n in (
        ("delivery_rate", delivered, delivered),
        ("open_rate", opens, delivered),
        ("unsubscribe_rate", unsubscribes, delivered),
    ):
        con.execute(
            "insert into marts.launch_gate_rates values (?, 'spring', 'email', 'v1', ?, ?, ?, ?, null)",
            [sync_key, metric, k, n, k / n if n else None],
        )


def decisions(con) -> list[tuple]:
    return con.execute(
        """select stage, decision, metric, round(value, 4), round(bound, 4), threshold, sample, decided_by
           from tideline_sync.launch_decisions order by decided_at, metric nulls last"""
    ).fetchall()


def stages(con) -> dict[str, set[str]]:
    rows = con.execute(
        "select stage, customer_id from tideline_sync.delivery_log where status = 'sent'"
    ).fetchall()
    out: dict[str, set[str]] = {}
    for stage, customer in rows:
        out.setdefault(stage, set()).add(customer)
    return out


def test_a_pilot_whose_gate_fails_holds_the_rest_alerts_staff_and_a_person_releases_it(
    con, smtp, http
) -> None:
    b = binding(pilot())
    notify = gate_failed_notifier(con, alerts_config(http))
    first = sync(con, smtp, b, NOON, on_gate_failed=notify)
    assert set(recipients(smtp)) == PILOT and 80 < len(PILOT) < 120
    assert first.sent == len(PILOT)
    assert first.skipped_by_reason == {"pilot:awaiting_gate": 400 - len(PILOT)}
    assert first.launch_stage == "pilot"
    assert stages(con) == {"pilot": PILOT}

    # 30 opens of 200: the point estimate is the minimum itself, its lower bound is not
    gate_rates(con, delivered=200, opens=30, unsubscribes=0)
    early = sync(con, smtp, b, NOON + dt.timedelta(hours=23), on_gate_failed=notify)
    assert (early.sent, early.launch_stage, decisions(con)) == (0, "pilot", [])  # the wait is not over

    judged = sync(con, smtp, b, NOON + dt.timedelta(hours=25), on_gate_failed=notify)
    assert judged.sent == 0 and judged.launch_stage == "held"
    assert judged.skipped_by_reason == {"pilot:gate_failed": 400 - len(PILOT)}
    assert decisions(con) == [
        ("pilot", "fail", "open_rate", 0.15, 0.1071, 0.15, 200, "gate:auto"),
        ("pilot", "pass", "unsubscribe_rate", 0.0, 0.0188, 0.05, 200, "gate:auto"),
        ("pilot", "fail", None, None, None, None, 200, "gate:auto"),
    ]
    alerts = [r for req in http.requests_for("/alerts") for r in req.body["records"]]
    assert len(alerts) == 1
    assert alerts[0]["fields"]["activation"] == "segment__email"
    assert (
        "open_rate 15.00% (30 of 200), lower bound 10.71% fails min 15.00%" in alerts[0]["fields"]["failing"]
    )
    assert "@" not in str(alerts[0])  # aggregates only

    held = sync(con, smtp, b, NOON + dt.timedelta(hours=26), on_gate_failed=notify)
    assert held.sent == 0 and len(http.requests_for("/alerts")) == 1  # the alert is not repeated

    assert "released by maria" in decide_pilot(con, b, "released", "maria", now=NOON + dt.timedelta(hours=27))
    released = sync(con, smtp, b, NOON + dt.timedelta(hours=28), on_gate_failed=notify)
    assert released.sent == 400 - len(PILOT) and released.launch_stage == "full"
    assert recipients(smtp) == Counter({c: 1 for c in CUSTOMERS})  # everyone once, the pilot not again
    assert stages(con) == {"pilot": PILOT, "full": set(CUSTOMERS) - PILOT}
    with pytest.raises(LaunchError, match="already decided"):
        decide_pilot(con, b, "cancelled", "maria")


def test_a_passing_gate_sends_the_rest_in_the_run_that_judges_it(con, smtp) -> None:
    b = binding(pilot())
    sync(con, smtp, b, NOON)
    gate_rates(con, delivered=200, opens=60, unsubscribes=0)
    run = sync(con, smtp, b, NOON + dt.timedelta(hours=24))
    assert run.sent == 400 - len(PILOT) and run.launch_stage == "full"
    assert decisions(con) == [
        ("pilot", "pass", "open_rate", 0.3, 0.2407, 0.15, 200, "gate:auto"),
        ("pilot", "pass", "unsubscribe_rate", 0.0, 0.0188, 0.05, 200, "gate:auto"),
        ("pilot", "pass", None, None, None, None, 200, "gate:auto"),
    ]
    assert recipients(smtp) == Counter({c: 1 for c in CUSTOMERS})


def test_too_few_delivered_keeps_waiting_and_a_cancel_keeps_the_rest_out(con, smtp) -> None:
    b = binding(pilot(min_delivered=300))
    sync(con, smtp, b, NOON)
    gate_rates(con, delivered=200, opens=60, unsubscribes=0)
    waiting = sync(con, smtp, b, NOON + dt.timedelta(hours=30))
    assert waiting.launch_stage == "pilot" and decisions(con) == []
    assert waiting.launch_decisions == ["pilot gate not judged yet: 200 pilot messages delivered, 300 needed"]
    decide_pilot(con, b, "cancelled", "lee", now=NOON + dt.timedelta(hours=31))
    for hours in (32, 80):
        run = sync(con, smtp, b, NOON + dt.timedelta(hours=hours))
        assert run.sent == 0 and run.skipped_by_reason == {"pilot:cancelled": 400 - len(PILOT)}
    assert set(recipients(smtp)) == PILOT
    # each held key's skips: one row per reason it was held for, not one per run (four runs)
    skips = con.execute(
        "select reason, count(*) from tideline_sync.delivery_log where status = 'skipped' group by 1"
    ).fetchall()
    assert dict(skips) == {"pilot:awaiting_gate": 400 - len(PILOT), "pilot:cancelled": 400 - len(PILOT)}
    with pytest.raises(LaunchError, match="already decided"):
        decide_pilot(con, b, "released", "lee")


def test_above_the_approval_limit_nothing_beyond_the_pilot_goes_until_approved(con, smtp) -> None:
    policies = PolicyConfig(approval_above=300)
    plain = binding()
    run = sync(con, smtp, plain, NOON, policies=policies)
    assert run.sent == 0 and run.launch_stage == "awaiting_approval"
    assert run.skipped_by_reason == {"approval:awaiting": 400}
    # a limit above the audience (the activation's own, which wins over the policies') needs nothing
    own = binding(LaunchSpec(approval_above=400))
    assert (
        SyncEngine(con, email(smtp), own, policies, now=NOON, record_run=False)
        .run(dry_run=True)
        .counts["would_send"]
        == 400
    )
    assert "approved by dana" in approve(con, plain, "dana", now=NOON + dt.timedelta(minutes=5))
    with pytest.raises(LaunchError, match="already approved by dana"):
        approve(con, plain, "someone else")
    approved = sync(con, smtp, plain, NOON + dt.timedelta(minutes=10), policies=policies)
    assert approved.sent == 400 and approved.launch_stage == "full"
    assert recipients(smtp) == Counter({c: 1 for c in CUSTOMERS})


def test_a_pilot_that_passes_still_waits_for_approval(con, smtp) -> None:
    policies = PolicyConfig(approval_above=300)
    b = binding(pilot())
    assert sync(con, smtp, b, NOON, policies=policies).sent == len(PILOT)  # the pilot needs no approval
    gate_rates(con, delivered=200, opens=60, unsubscribes=0)
    run = sync(con, smtp, b, NOON + dt.timedelta(hours=24), policies=policies)
    assert run.sent == 0 and run.launch_stage == "awaiting_approval"
    assert run.skipped_by_reason == {"approval:awaiting": 400 - len(PILOT)}
    approve(con, b, "dana")
    assert sync(con, smtp, b, NOON + dt.timedelta(hours=25), policies=policies).sent == 400 - len(PILOT)


def rollout_binding(**kw) -> SyncBinding:
    return binding(
        LaunchSpec(rollout=RolloutSpec(0.3, dt.timedelta(hours=48), "A")),
        holdout_share=0.1,
        variants={"A": {"subject": "Spring A"}, "B": {"subject": "Spring B"}},
        variant_weights={"A": 0.5, "B": 0.5},
        **kw,
    )


def experiment_results(con, winner: str | None, channel: str = "email") -> None:
    con.execute(
        """create or replace table marts.experiment_results (campaign varchar, channel varchar, arm varchar,
               arm_type varchar, reach bigint, conversion_rate double, is_winner boolean)"""
    )
    for arm, kind, rate in (("A", "variant", 0.02), ("B", "variant", 0.05), ("holdout", "holdout", 0.01)):
        con.execute(
            "insert into marts.experiment_results values ('spring', ?, ?, ?, 60, ?, ?)",
            [channel, arm, kind, rate, arm == winner],
        )


def variants_sent(con) -> dict[str, Counter]:
    rows = con.execute(
        "select stage, variant from tideline_sync.delivery_log where status = 'sent'"
    ).fetchall()
    out: dict[str, Counter] = {}
    for stage, variant in rows:
        out.setdefault(stage, Counter())[variant] += 1
    return out


def test_a_winner_roll_out_sends_the_winner_to_the_rest_and_keeps_the_holdout_out(con, smtp) -> None:
    b = rollout_binding()
    test = sync(con, smtp, b, NOON)
    tested = TEST_SHARE - HOLDOUT
    assert set(recipients(smtp)) == tested and test.launch_stage == "test"
    assert test.skipped_by_reason == {
        "holdout": len(HOLDOUT),
        "rollout:awaiting_decision": len(set(CUSTOMERS) - TEST_SHARE - HOLDOUT),
    }
    experiment_results(con, winner="B")
    assert sync(con, smtp, b, NOON + dt.timedelta(hours=47)).launch_stage == "test"  # not time yet
    decided = sync(con, smtp, b, NOON + dt.timedelta(hours=49))
    assert decided.launch_stage == "rollout"
    rest = set(CUSTOMERS) - TEST_SHARE - HOLDOUT
    assert decided.sent == len(rest)
    assert recipients(smtp) == Counter({c: 1 for c in set(CUSTOMERS) - HOLDOUT})  # the holdout: never
    sent = variants_sent(con)
    assert sent["rollout"] == Counter({"B": len(rest)})  # the winner, to everyone outside the test
    assert set(sent["test"]) == {"A", "B"} and sum(sent["test"].values()) == len(tested)
    assert decisions(con) == [("rollout", "winner", "conversion_rate", 0.05, None, None, 60, "gate:auto")]


def test_without_a_significant_winner_the_fallback_goes(con, smtp) -> None:
    b = rollout_binding()
    sync(con, smtp, b, NOON)
    experiment_results(con, winner=None)
    sync(con, smtp, b, NOON + dt.timedelta(hours=48))
    assert set(variants_sent(con)["rollout"]) == {"A"}
    row = con.execute("select decision, variant, detail from tideline_sync.launch_decisions").fetchone()
    assert row[:2] == ("fallback", "A") and "no significant winner" in row[2]


def test_every_run_records_who_launched_it(con, smtp) -> None:
    sync(con, smtp, binding(), NOON, launched_by="cli:maria")
    sync(con, smtp, binding(), NOON + dt.timedelta(hours=1), launched_by="schedule:spring_daily")
    rows = con.execute(
        "select launched_by, campaign, content_version, launch_stage from tideline_sync.sync_runs order by started_at"
    ).fetchall()
    assert rows == [("cli:maria", "spring", "v1", None), ("schedule:spring_daily", "spring", "v1", None)]


@pytest.mark.slow  # a child process killed mid-sync
def test_a_crash_between_test_and_roll_out_sends_nobody_twice(tmp_path: Path, http: HttpSink) -> None:
    """The test share goes out; the roll-out run is killed (SIGKILL) mid-send; the rerun finishes it.
    The SMS endpoint sees one message key per customer, and the test share's customers are not
    sent the winner on top of their variant."""
    db = tmp_path / "crash.duckdb"
    con = duckdb.connect(str(db))
    make_customers(con)
    experiment_results(con, winner="B", channel="sms")
    sms = {"url": http.url("/sms"), "secret_env": "S", "max_batch_size": 5, "retry_base_seconds": 0.01}
    dest = WebhookDestination.from_config("sms", sms, {"S": SECRET})
    first = SyncEngine(con, dest, rollout_sms_binding(), PolicyConfig(), now=NOON).run()
    assert first.sent == len(TEST_SHARE - HOLDOUT)
    con.close()

    before = http.count_records()
    http.delay_next(10_000, 0.05)  # every request is slow: the kill lands mid-sync
    script = textwrap.dedent(f"""
        import datetime as dt, duckdb
        from activation.config import PolicyConfig
        from activation.destinations.webhook import WebhookDestination
        from activation.engine import SyncEngine
        from tests.integration.test_launches import NOON, rollout_sms_binding
        d = WebhookDestination.from_config("sms", {sms!r}, {{"S": {SECRET!r}}})
        SyncEngine(duckdb.connect({str(db)!r}), d, rollout_sms_binding(), PolicyConfig(),
                   now=NOON + dt.timedelta(hours=49), workers=2).run()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[2])
    deadline = time.monotonic() + 60
    while http.count_records() < before + 40 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    rest = set(CUSTOMERS) - TEST_SHARE - HOLDOUT
    assert before < http.count_records() < before + len(rest), "the kill should land mid-roll-out"

    http.delay_next(0, 0)
    con = duckdb.connect(str(db))
    SyncEngine(con, dest, rollout_sms_binding(), PolicyConfig(), now=NOON + dt.timedelta(hours=50)).run()
    keys: dict[str, set[str]] = {}
    for req in http.requests_for("/sms"):
        for r in req.body["records"]:
            keys.setdefault(r["customer_id"], set()).add(r["idempotency_key"])
    assert set(keys) == set(CUSTOMERS) - HOLDOUT  # nobody lost, the holdout never sent
    assert all(len(k) == 1 for k in keys.values())  # one message per customer across the crash
    statuses = Counter(
        s for (s,) in con.execute("select status from tideline_sync.delivery_ledger").fetchall()
    )
    assert statuses == {"sent": 400 - len(HOLDOUT), "holdout": len(HOLDOUT)}
    winner = con.execute(
        "select count(*) from tideline_sync.delivery_ledger where status = 'sent' and stage = 'rollout' and variant = 'B'"
    ).fetchone()[0]
    assert winner == len(rest)
    con.close()


def rollout_sms_binding() -> SyncBinding:
    """The crash test's SMS binding (the killed child process builds it too)."""
    b = rollout_binding()
    return SyncBinding(
        "segment", "marts.segment", "sms", "message", "sms", {"phone": "phone"}, "spring",
        holdout_share=0.1, variants=b.variants, variant_weights=b.variant_weights, launch=b.launch,
    )  # fmt: skip


@pytest.mark.slow  # the command parses the dbt project for the activations' content versions
def test_approve_release_and_cancel_from_the_command_line(isolated_home: Path, capsys) -> None:
    from tideline.cli import main

    warehouse = isolated_home / "warehouse.duckdb"
    assert main(["approve", "win_back_dormant", "--by", "dana"]) == 0  # a segment: both its activations
    out = capsys.readouterr().out
    assert "win_back_dormant__email (campaign win_back_2026q4, content v1): approved by dana" in out
    assert "win_back_dormant__sms (campaign win_back_2026q4, content v1): approved by dana" in out
    assert main(["approve", "win_back_dormant__sms", "--by", "lee"]) == 2
    assert "already approved by dana" in capsys.readouterr().err
    assert main(["pilot", "release", "win_back_dormant__sms", "--by", "maria"]) == 0
    assert main(["pilot", "cancel", "win_back_dormant__email", "--by", "maria"]) == 2
    assert "declares no pilot" in capsys.readouterr().err
    assert main(["approve", "no_such_campaign", "--by", "dana"]) == 2
    assert "no message activation named 'no_such_campaign'" in capsys.readouterr().err
    con = duckdb.connect(str(warehouse), read_only=True)
    rows = con.execute(
        "select sync_key, stage, decision, decided_by from tideline_sync.launch_decisions order by decided_at"
    ).fetchall()
    con.close()
    assert rows == [
        ("win_back_dormant__email", "approval", "approved", "dana"),
        ("win_back_dormant__sms", "approval", "approved", "dana"),
        ("win_back_dormant__sms", "pilot", "released", "maria"),
    ]
