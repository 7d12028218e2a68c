"""An SMTP sync's send list goes out in windows of two batches per worker, each window marked
in_flight in one ledger write (activation.engine.sending.window_records), against a real SMTP
server on loopback (tideline.demo.sinks.smtp_sink).

A window of one batch made every 20 emails wait for two ledger writes, with the workers idle in
between; the crash test (test_sync_engine: killed mid-batch) holds that bigger windows still lose
at most the messages being handed over.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from activation.config import PolicyConfig, SyncBinding
from activation.destinations.smtp_email import SmtpEmailDestination
from activation.engine import SyncEngine
from activation.engine.ledger_writes import LedgerWriter
from tideline.demo.sinks.smtp_sink import SmtpSink

NOON = dt.datetime(2026, 3, 2, 12, 0)
SECRET = {"TIDELINE_TRACKING_SECRET": "smtp-window-test-tracking-secret-0123456789"}


@pytest.fixture
def warehouse(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create schema marts")
    con.execute(
        """create table marts.dim_customers as
           select 'c' || lpad(cast(i as varchar), 3, '0') as customer_id, i % 10 <> 0 as email_opt_in,
                  'UTC' as timezone
           from range(1, 201) t(i)"""
    )
    con.execute(
        "create table marts.segment as select customer_id, customer_id || '@example.com' as email from marts.dim_customers"
    )
    return con


def test_an_smtp_sync_marks_a_window_per_two_batches_of_every_worker(
    warehouse: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    marked: list[int] = []  # records per in_flight write, in order
    write_now = LedgerWriter.write_now

    def spy(self: LedgerWriter, table) -> None:  # noqa: ANN001 - a pyarrow Table
        marked.append(table.num_rows)
        write_now(self, table)

    monkeypatch.setattr(LedgerWriter, "write_now", spy)
    binding = SyncBinding(
        "segment",
        "marts.segment",
        "email",
        "message",
        "email",
        {"email": "email"},
        "windows",
        content={"subject": "Hi", "text": "Hello"},
    )
    with SmtpSink() as smtp:
        host, port = smtp.address
        config = {
            "host": host,
            "port": port,
            "from_address": "shop@example.com",
            "unsubscribe_base_url": "http://127.0.0.1:1/u",
            "max_batch_size": 10,
        }
        destination = SmtpEmailDestination.from_config("email", config, SECRET)
        result = SyncEngine(warehouse, destination, binding, PolicyConfig(), now=NOON, workers=2).run()
        received = Counter(str(m["To"]) for m in smtp.messages)
    # 180 with consent, in windows of 2 workers x 2 batches x 10 records
    assert result.sent == 180 and sum(received.values()) == 180 and set(received.values()) == {1}
    assert marked == [40, 40, 40, 40, 20]
    statuses = dict(
        warehouse.execute(
            "select status, count(*) from tideline_sync.delivery_ledger where status <> 'skipped' group by 1"
        ).fetchall()
    )
    assert statuses == {"sent": 180}
    # where the run's time went, phase by phase, within its duration
    assert list(result.phase_seconds) == [
        "resolve",
        "plan_and_policies",
        "record_decisions",
        "send",
        "fold_and_finalize",
    ]
    assert 0 < sum(result.phase_seconds.values()) <= result.duration_seconds
    assert result.as_dict()["phase_seconds"].keys() == result.phase_seconds.keys()
