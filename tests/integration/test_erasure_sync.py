"""An erasure reaches every sync at once, before dbt rebuilds a segment: the real planner, policies,
ledger and engine on a DuckDB file, the real CRM and webhook destinations against a loopback HTTP
server, and the real audience-files destination writing files.

The segment still holds the erased customer (c003) in every test: only the erasure record
(activation.privacy) keeps them out.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from pathlib import Path

import duckdb
import pytest

from activation.config import PolicyConfig, SyncBinding
from activation.destinations.audience_files import AudienceFilesDestination
from activation.destinations.crm_rest import CrmRestDestination
from activation.destinations.webhook import WebhookDestination
from activation.engine import SyncEngine
from activation.privacy import find_person, record_erasure
from tideline.demo.sinks.http_sink import HttpSink

SECRET, TOKEN = "erasure-test-secret", "erasure-test-token"
ENV = {"TEST_WEBHOOK_SECRET": SECRET, "TEST_CRM_TOKEN": TOKEN}
NOON = dt.datetime(2026, 3, 2, 12, 0)
ERASED, ERASED_EMAIL, ERASED_PHONE = "c003", "ada.lovelace@example.com", "+447700900123"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    """Five opted-in customers in marts.dim_customers and marts.segment; c003 is Ada."""
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create schema marts")
    con.execute(
        """create table marts.dim_customers as
           select 'c00' || i as customer_id,
                  case when i = 3 then ? else 'c00' || i || '@example.com' end as email,
                  case when i = 3 then ? else '+4470090000' || i end as phone,
                  case when i = 3 then 'Ada' else 'Customer' end as first_name,
                  true as email_opt_in, true as sms_opt_in, 'UTC' as timezone
           from range(1, 6) t(i)""",
        [ERASED_EMAIL, ERASED_PHONE],
    )
    con.execute(
        "create table marts.segment as select customer_id, email, phone, first_name from marts.dim_customers"
    )
    return con


@pytest.fixture
def sink(tmp_path: Path):
    with HttpSink(tmp_path / "sink", secret=SECRET, token=TOKEN) as s:
        yield s


def _erase(con: duckdb.DuckDBPyConnection) -> None:
    record_erasure(
        con, find_person(con, customer_id=ERASED), by="dpo@shop.example", reason="ticket 1", now=NOON
    )


def _sync(con, destination, binding: SyncBinding):
    return SyncEngine(con, destination, binding, PolicyConfig(), now=NOON, journal_dir=None).run()


def _crm(sink: HttpSink) -> CrmRestDestination:
    config = {"base_url": sink.url("/crm/v3/"), "token_env": "TEST_CRM_TOKEN", "object": "contacts"}
    return CrmRestDestination.from_config(
        "crm", {**config, "retry_attempts": 2, "retry_base_seconds": 0.01}, ENV
    )


def _state(con, sync_key: str) -> dict[str, str | None]:
    return dict(
        con.execute(
            "select customer_id, fields_json from tideline_sync.synced_state where sync_key = ?", [sync_key]
        ).fetchall()
    )


def test_an_upsert_crm_binding_deletes_the_erased_customer_on_its_next_sync(con, sink) -> None:
    binding = SyncBinding("segment", "marts.segment", "crm", "upsert", None, {"email": "email"}, "crm_sync")
    assert _sync(con, _crm(sink), binding).sent == 5
    assert ERASED in _state(con, binding.sync_key)

    _erase(con)
    result = _sync(con, _crm(sink), binding)

    archive = sink.requests_for("/crm/v3/contacts/batch/archive")
    assert [[i["id"] for i in r.body["inputs"]] for r in archive] == [[ERASED]]
    assert "properties" not in archive[0].body["inputs"][0]  # a delete carries the id only
    assert len(sink.requests_for("/crm/v3/contacts/batch/upsert")) == 1  # nobody else was sent again
    assert result.counts["removed"] == 1 and result.sent == 1
    assert ERASED not in _state(con, binding.sync_key) and len(_state(con, binding.sync_key)) == 4

    # the delete is delivered: the next sync has nothing to do
    again = _sync(con, _crm(sink), binding)
    assert again.counts["planned"] == 0 and len(sink.requests) == 2


def test_a_message_sync_leaves_the_erased_customer_out_without_a_trace(con, sink) -> None:
    _erase(con)
    destination = WebhookDestination.from_config(
        "sms", {"url": sink.url("/sms"), "secret_env": "TEST_WEBHOOK_SECRET", "retry_base_seconds": 0.01}, ENV
    )
    binding = SyncBinding("segment", "marts.segment", "sms", "message", "sms", {"phone": "phone"}, "spring")
    result = _sync(con, destination, binding)

    received = [r["customer_id"] for req in sink.requests_for("/sms") for r in req.body["records"]]
    assert sorted(received) == ["c001", "c002", "c004", "c005"]
    assert result.sent == 4 and result.skipped == 0
    # not even a skip: the ledger never hears of them
    ledger = con.execute("select count(*) from tideline_sync.delivery_log where customer_id = ?", [ERASED])
    assert ledger.fetchone()[0] == 0


def test_a_mirrored_audience_removes_the_erased_customer_and_keeps_no_personal_field(con, tmp_path) -> None:
    def audience() -> AudienceFilesDestination:
        return AudienceFilesDestination.from_config("ads", {"directory": str(tmp_path / "audiences")})

    binding = SyncBinding(
        "segment", "marts.segment", "ads", "mirror", None, {"email": "email", "phone": "phone"}, "ads"
    )
    assert _sync(con, audience(), binding).sent == 5
    assert ERASED_EMAIL in (_state(con, binding.sync_key)[ERASED] or "")  # mirror keeps what a delete needs

    _erase(con)
    result = _sync(con, audience(), binding)

    assert result.counts["removed"] == 1 and result.sent == 1
    (removed,) = (tmp_path / "audiences" / "segment" / result.sync_id).glob("remove.csv")
    with removed.open(newline="") as fh:
        assert list(csv.DictReader(fh)) == [
            {"email_sha256": sha(ERASED_EMAIL), "phone_sha256": sha(ERASED_PHONE.lstrip("+"))}
        ]
    # after the delivered delete: no synced fields, only a generation in removed_state
    assert ERASED not in _state(con, binding.sync_key)
    assert con.execute(
        "select * from tideline_sync.removed_state where customer_id = ?", [ERASED]
    ).fetchall() == [(binding.sync_key, ERASED, 2, NOON)]
    # the ledger holds ids, keys and statuses: nothing personal of theirs, in any column
    rows = con.execute("select * from tideline_sync.delivery_log where customer_id = ?", [ERASED]).fetchall()
    text = " ".join(str(v) for row in rows for v in row).lower()
    assert rows and "ada" not in text.replace(ERASED, "") and "7700900123" not in text and "@" not in text
