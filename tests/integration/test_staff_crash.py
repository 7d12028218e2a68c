"""A staff notification run killed with SIGKILL between the send and its record, then run again:
nobody gets a notification twice (real HTTP and SMTP sinks on loopback, as
tests/integration/test_journey_crash.py does for journeys).

The sink takes the message, then holds its answer; the child is killed while it waits, so the
ledger has no outcome for what was delivered. The rerun reads the ledger: the webhook batch is sent
again under the same record keys, which the receiver deduplicates (each processed once); the SMTP
message was in flight, so it is never resent (SMTP cannot be retried safely)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

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

pytestmark = pytest.mark.slow  # a child process killed mid-send

NOON = dt.datetime(2026, 12, 7, 12, 0)
RULES = {"lead_mql": {"route": "owner"}}
ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import datetime as dt, json, sys
    import duckdb
    from activation.staff.run import run_staff_notifications
    from tests.staff_fixtures import AS_OF, activation_config, sender, staff_config
    from pathlib import Path
    db, http_base, smtp, tmp = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), Path(sys.argv[4])
    config = activation_config(http_base, tuple(smtp))
    staff = staff_config(config, json.loads(sys.argv[5]))
    con = duckdb.connect(db)
    run_staff_notifications(con, staff, sender(config, tmp), AS_OF, dt.datetime(2026, 12, 7, 12, 0))
    print("finished")
    """
)


def _warehouse(path: Path, http: HttpSink) -> None:
    con = make_warehouse(path)
    add_staff(
        con,
        [
            ("s_chat", None, http.url("/staff/s_chat"), "webhook", "UTC", True),
            ("s_mail", None, "s_mail@corp.example", "email", "UTC", True),
        ],
    )
    add_owners(
        con, [(f"c_{i}", "s_chat", "2026-01-01") for i in range(5)] + [("c_9", "s_mail", "2026-01-01")]
    )
    for i in [*range(5), 9]:
        add_lead(con, f"c_{i}", "2026-12-06", 60.0)
    con.close()


def _kill_when(proc: subprocess.Popen, arrived, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not arrived():
        if proc.poll() is not None:
            raise AssertionError(f"the child ended before the kill: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("nothing arrived at the sink in time")
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)


def _child(db: Path, http: HttpSink, smtp: SmtpSink, tmp_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            str(db),
            http.base_url,
            json.dumps(smtp.address),
            str(tmp_path),
            json.dumps(RULES),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _rerun(db: Path, http: HttpSink, smtp: SmtpSink, tmp_path: Path, now: dt.datetime = NOON):
    con = duckdb.connect(str(db))
    config = activation_config(http.base_url, smtp.address)
    result = run_staff_notifications(con, staff_config(config, RULES), sender(config, tmp_path), AS_OF, now)
    statuses = dict(con.execute("select customer_id, status from tideline_staff.notifications").fetchall())
    con.close()
    return result, statuses


def test_webhook_killed_after_the_post_is_resent_under_the_same_keys_and_processed_once(tmp_path):
    db = tmp_path / "warehouse.duckdb"
    with HttpSink(secret=SECRET) as http, SmtpSink() as smtp:
        _warehouse(db, http)
        http.delay_next(1, 30)  # the chat batch is processed, its answer comes late: the kill lands first
        _kill_when(_child(db, http, smtp, tmp_path), lambda: http.count_records() == 5)
        result, statuses = _rerun(db, http, smtp, tmp_path)
        assert result.planned.created == 0
        # the batch went again under the same record keys: the receiver processed each key once
        assert len(http.requests_for("/staff/s_chat")) == 2
        assert len(http.key_counts()) == 5 and set(http.key_counts().values()) == {1}
        assert http.duplicates + http.record_duplicates >= 1
        assert {statuses[f"c_{i}"] for i in range(5)} == {"sent"} and statuses["c_9"] == "sent"
        again, _ = _rerun(db, http, smtp, tmp_path, NOON + dt.timedelta(hours=1))
        assert again.delivered.by_destination == {}
        assert len(http.requests_for("/staff/s_chat")) == 2 and len(smtp.messages) == 1


def test_email_killed_before_its_acknowledgement_is_never_sent_again(tmp_path):
    db = tmp_path / "warehouse.duckdb"
    with HttpSink(secret=SECRET) as http, SmtpSink() as smtp:
        _warehouse(db, http)
        smtp.late_ack_next(1, 30)  # the email is stored, its 250 comes late: the kill lands first
        _kill_when(_child(db, http, smtp, tmp_path), lambda: len(smtp.messages) == 1)
        _, statuses = _rerun(db, http, smtp, tmp_path)
        _rerun(db, http, smtp, tmp_path, NOON + dt.timedelta(hours=1))
        assert len(smtp.messages) == 1 and set(smtp.message_id_counts().values()) == {1}
        assert statuses["c_9"] == "unknown"  # maybe delivered: reported as such, never resent
        assert {statuses[f"c_{i}"] for i in range(5)} == {"sent"}
