"""A journey tick killed with SIGKILL in the middle of sending, then rerun: every due message is sent
exactly once (real SMTP and HTTP sinks on loopback), nothing is lost, and the entries move on.

The killed tick runs in a child process against the same warehouse file; the SMTP sink holds every
acknowledgement a little, so the kill lands while batches are being handed over. SMTP cannot be
retried safely: a message in flight at the kill is `unknown` (never resent), so at most one per
worker may be missing; every other customer gets exactly one email. Then the day's wait passes and
a second tick sends the SMS step (an idempotent HTTP destination) to everyone once, and a third tick
sends nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from tideline.demo.sinks.http_sink import HttpSink
from tideline.demo.sinks.smtp_sink import SmtpSink

pytestmark = pytest.mark.slow  # a child process killed mid-send

CUSTOMERS = 200
SECRETS = {
    "TEST_WEBHOOK_SECRET": "journey-crash-webhook-secret",
    "TIDELINE_TRACKING_SECRET": "journey-crash-test-tracking-secret-0123456789",
}
T0 = dt.datetime(2026, 3, 10, 10, 0)

# the child's tick: the journey and the delivery built the same way as in the parent
TICK = """
import datetime as dt, json, sys
import duckdb
from activation.conditions import Catalog, parse_condition
from activation.config import load_config
from activation.journeys.deliver import EngineDelivery
from activation.journeys.run import run_ticks
from activation.journeys.spec import END, Entry, EventTrigger, Journey, Send, Step, Wait
from activation.warehouse import DuckDBLimits

db, config_path, secrets, clock = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
trigger = parse_condition({"event": {"type": "checkout_started"}}, source="crash", path="entry")
journey = Journey(
    name="crash", source="crash.yml", entry=Entry(EventTrigger(trigger)),
    steps=(
        Step("mail", Send("email", "email", {"email": "email"}, {"subject": "Hi", "text": "Hello"}), "day"),
        Step("day", Wait(duration=dt.timedelta(days=1)), "sms"),
        Step("sms", Send("sms", "sms", {"phone": "phone"}, {"text": "Still there?"}), END),
    ),
    canonical={"crash": 1},
)
config = load_config(config_path, env=secrets)
deliver = EngineDelivery(config, "/nonexistent-raw", DuckDBLimits.resolve(env={}), workers=2)
con = duckdb.connect(db)
results = run_ticks(con, [journey], dt.datetime.fromisoformat(clock), deliver=deliver, catalog=Catalog.default())
print(json.dumps(results[0].as_metadata()))
"""


def _warehouse(path: Path) -> None:
    con = duckdb.connect(str(path))
    con.execute("create schema marts; create schema intermediate")
    con.execute(
        """create table marts.dim_customers as
           select 'c' || lpad(cast(i as varchar), 3, '0') as customer_id,
                  'c' || lpad(cast(i as varchar), 3, '0') || '@example.com' as email,
                  '+4470000' || lpad(cast(i as varchar), 4, '0') as phone, 'UTC' as timezone,
                  true as email_opt_in, true as sms_opt_in, false as push_opt_in,
                  null::timestamp as email_consent_at, null::timestamp as sms_consent_at,
                  null::timestamp as push_consent_at
           from range(?) t(i)""",
        [CUSTOMERS],
    )
    con.execute(
        """create table intermediate.int_events_stitched as
           select 'e' || customer_id as event_id, customer_id, 'checkout_started' as event_type,
                  ?::timestamp as occurred_at, null::varchar as url, null::varchar as utm_source,
                  null::varchar as utm_medium, null::varchar as utm_campaign, null::varchar as product_id
           from marts.dim_customers""",
        [T0],
    )
    con.execute(
        """create table intermediate.int_orders_resolved (order_id varchar, customer_id varchar,
               ordered_at timestamp, is_purchase boolean, amount double, channel varchar,
               coupon_code varchar, used_coupon boolean, status varchar)"""
    )
    con.close()


def _config(path: Path, smtp: SmtpSink, http: HttpSink) -> Path:
    host, port = smtp.address
    config = {
        "destinations": {
            "email": {
                "type": "smtp",
                "host": host,
                "port": port,
                "from_address": "shop@example.com",
                "unsubscribe_base_url": "http://127.0.0.1:1/u",
                "max_batch_size": 10,
            },
            "sms": {"type": "webhook", "url": http.url("/sms"), "secret_env": "TEST_WEBHOOK_SECRET"},
        },
        "policies": {"quiet_hours": {"start": 0, "end": 0}, "frequency_caps": {"marketing": {}}},
    }
    path.write_text(json.dumps(config))
    return path


def _tick(db: Path, config: Path, clock: dt.datetime) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(TICK),
            str(db),
            str(config),
            json.dumps(SECRETS),
            clock.isoformat(),
        ],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        text=True,
    )


def test_a_tick_killed_mid_send_and_rerun_sends_every_due_message_exactly_once(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    _warehouse(db)
    with SmtpSink() as smtp, HttpSink(secret=SECRETS["TEST_WEBHOOK_SECRET"]) as http:
        config = _config(tmp_path / "activation.yml", smtp, http)
        smtp.data_delay = 0.01
        proc = _tick(db, config, T0 + dt.timedelta(minutes=5))
        deadline = time.monotonic() + 60
        while len(smtp.messages) < 60 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        smtp.data_delay = 0.0
        partial = len(smtp.messages)
        assert 0 < partial < CUSTOMERS, "the kill should land mid-send"

        rerun = _tick(db, config, T0 + dt.timedelta(minutes=6))
        first = json.loads(rerun.communicate(timeout=120)[0])
        emails = Counter(str(m["To"]) for m in smtp.messages)

        day_later = _tick(db, config, T0 + dt.timedelta(days=1, minutes=10))
        second = json.loads(day_later.communicate(timeout=120)[0])
        again = _tick(db, config, T0 + dt.timedelta(days=1, minutes=11))
        third = json.loads(again.communicate(timeout=120)[0])
        texts = Counter(r["customer_id"] for q in http.requests_for("/sms") for r in q.body["records"])

    con = duckdb.connect(str(db))
    unknown = {
        c
        for (c,) in con.execute(
            "select customer_id from tideline_sync.delivery_ledger where status = 'unknown'"
        ).fetchall()
    }
    assert set(emails.values()) == {1}  # nobody got the email twice
    assert len(unknown) <= 2  # at most the message each of the two workers was handing over
    everyone = {f"c{i:03d}" for i in range(CUSTOMERS)}
    assert {f"{c}@example.com" for c in everyone - unknown} <= set(emails)  # nothing lost
    assert first["entered"] == 0  # the killed tick had entered everyone already: nobody twice
    assert con.execute("select count(*) from tideline_journeys.entries").fetchone()[0] == CUSTOMERS
    # the rerun moved every entry past the email (the killed tick's sends by the ledger)
    assert second["sent"] == CUSTOMERS and set(texts.values()) == {1} and set(texts) == everyone
    assert third["sent"] == 0
    steps = dict(
        con.execute(
            "select from_node, count(*) from tideline_journeys.steps where from_node = 'mail' group by 1"
        ).fetchall()
    )
    assert steps == {"mail": CUSTOMERS}  # each entry left the email step exactly once
    done = con.execute(
        "select count(*) from tideline_journeys.entries where exit_reason = 'completed'"
    ).fetchone()[0]
    assert done == CUSTOMERS
