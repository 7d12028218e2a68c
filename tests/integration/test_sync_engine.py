"""The sync engine against a real HTTP endpoint on loopback (webhook destination + HttpSink).

No mocks of our own code: a DuckDB warehouse file, the real planner, policies, ledger
and engine, the real webhook destination, and a real HTTP server receiving the batches.
"""

from __future__ import annotations

import datetime as dt
import math
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

from activation.config import FrequencyCap, PolicyConfig, SyncBinding
from activation.destinations.base import DestinationDefaults
from activation.destinations.webhook import WebhookDestination
from activation.engine import SyncEngine
from activation.engine import sending as engine_module
from activation.ledger import suppress
from activation.policies import stable_unit
from tideline.demo.sinks.http_sink import HttpSink

SECRET = "test-secret"
NOON = dt.datetime(2026, 3, 2, 12, 0)  # a Monday, 12:00 UTC


@pytest.fixture
def sink():
    with HttpSink(secret=SECRET, dedupe=False) as s:
        yield s


@pytest.fixture
def warehouse(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create schema marts")
    con.execute(
        """create table marts.dim_customers as
           select 'c' || lpad(cast(i as varchar), 4, '0') as customer_id,
                  i % 10 <> 0 as email_opt_in, i % 10 <> 0 as sms_opt_in, true as push_opt_in,
                  case when i % 7 = 0 then 'Asia/Tokyo' else 'Europe/London' end as timezone
           from range(1, 201) t(i)"""
    )
    con.execute(
        """create table marts.segment as
           select customer_id, customer_id || '@example.com' as email, '+4470000' || right(customer_id, 4) as phone
           from marts.dim_customers"""
    )
    return con


def _destination(
    sink: HttpSink, path: str = "/sms", batch: int = 25, attempts: int = 3, timeout: float = 2
) -> WebhookDestination:
    return WebhookDestination.from_config(
        "sms",
        {
            "url": sink.url(path),
            "secret_env": "TEST_WEBHOOK_SECRET",
            "max_batch_size": batch,
            "retry_base_seconds": 0.01,
            "retry_attempts": attempts,
            "timeout_seconds": timeout,
        },
        {"TEST_WEBHOOK_SECRET": SECRET},
    )


def _binding(
    mode: str = "message", channel: str | None = "sms", campaign: str = "spring", **kw
) -> SyncBinding:
    return SyncBinding(
        segment="segment",
        relation="marts.segment",
        destination="sms",
        mode=mode,
        channel=channel,
        fields={"phone": "phone", "email": "email"},
        campaign=campaign,
        **kw,
    )


POLICIES = PolicyConfig(
    frequency_caps={"marketing": {"sms": FrequencyCap(2, 7)}}, quiet_hours_start=21, quiet_hours_end=8
)


def _delivered(sink: HttpSink, path: str = "/sms") -> Counter:
    return Counter(r["customer_id"] for req in sink.requests_for(path) for r in req.body["records"])


def test_message_sync_respects_consent_and_sends_once(warehouse, sink) -> None:
    result = SyncEngine(warehouse, _destination(sink), _binding(), POLICIES, now=NOON).run()
    delivered = _delivered(sink)
    # 200 customers; every 10th has no SMS consent; Tokyo is at 21:00 at noon UTC: quiet hours
    tokyo = {f"c{i:04d}" for i in range(1, 201) if i % 7 == 0 and i % 10 != 0}
    no_consent = {f"c{i:04d}" for i in range(1, 201) if i % 10 == 0}
    assert set(delivered) == {f"c{i:04d}" for i in range(1, 201)} - no_consent - tokyo
    assert set(delivered.values()) == {1}
    assert result.skipped_by_reason == {"no_consent": 20, "quiet_hours": len(tokyo)}
    assert result.sent == len(delivered)
    # a second run the same day sends nothing new; the deferred ones go out once it is day in Tokyo
    again = SyncEngine(
        warehouse, _destination(sink), _binding(), POLICIES, now=NOON + dt.timedelta(hours=1)
    ).run()
    assert again.sent == 0
    morning_tokyo = dt.datetime(2026, 3, 3, 1, 0)  # 10:00 in Tokyo, 01:00 in London (quiet there, all sent)
    later = SyncEngine(warehouse, _destination(sink), _binding(), POLICIES, now=morning_tokyo).run()
    assert later.sent == len(tokyo)
    assert set(_delivered(sink).values()) == {1}


def test_unsubscribed_and_capped_customers_receive_nothing(warehouse, sink) -> None:
    suppress(warehouse, "c0001", "all", "unsubscribed")
    suppress(warehouse, "c0002", "sms", "complained")
    suppress(warehouse, "c0003", "email", "hard_bounced")  # another channel: still gets SMS
    for campaign in ("one", "two"):  # two campaigns fill the cap of 2 SMS per 7 days
        SyncEngine(warehouse, _destination(sink), _binding(campaign=campaign), POLICIES, now=NOON).run()
    third = SyncEngine(warehouse, _destination(sink), _binding(campaign="three"), POLICIES, now=NOON).run()
    delivered = _delivered(sink)
    assert "c0001" not in delivered and "c0002" not in delivered
    assert delivered["c0003"] == 2
    assert third.sent == 0 and third.skipped_by_reason["frequency_cap"] > 100
    reasons = dict(
        warehouse.execute(
            "select customer_id, reason from tideline_sync.delivery_ledger where sync_id = ? "
            "and customer_id in ('c0001', 'c0002')",
            [third.sync_id],
        ).fetchall()
    )
    assert reasons == {"c0001": "suppressed:unsubscribed", "c0002": "suppressed:complained"}


def test_holdout_is_stable_and_recorded(warehouse, sink) -> None:
    binding = _binding(holdout_share=0.3, channel="push", campaign="launch")
    SyncEngine(warehouse, _destination(sink, "/push"), binding, POLICIES, now=NOON).run()
    held = {
        r[0]
        for r in warehouse.execute(
            "select customer_id from tideline_sync.delivery_ledger where status = 'holdout'"
        ).fetchall()
    }
    expected = {f"c{i:04d}" for i in range(1, 201) if stable_unit("holdout|launch", f"c{i:04d}") < 0.3}
    assert held == expected and 30 < len(held) < 90
    assert not held & set(_delivered(sink, "/push"))


def test_variants_follow_the_stable_hash(warehouse, sink) -> None:
    binding = _binding(
        channel="push",
        campaign="ab",
        variants={"A": {"text": "a"}, "B": {"text": "b"}},
        variant_weights={"A": 0.5, "B": 0.5},
    )
    SyncEngine(warehouse, _destination(sink, "/push"), binding, POLICIES, now=NOON).run()
    for request in sink.requests_for("/push"):
        variant = request.body["variant"]
        assert request.body["content"]["text"] == variant.lower()
        for record in request.body["records"]:
            expected = "A" if stable_unit("variant|ab", record["customer_id"]) < 0.5 else "B"
            assert variant == expected


def test_segment_change_sends_only_the_difference_and_mirror_deletes(warehouse, sink) -> None:
    binding = _binding(mode="mirror", channel=None, campaign="crm")
    first = SyncEngine(warehouse, _destination(sink, "/crm"), binding, POLICIES, now=NOON).run()
    assert (first.counts["added"], first.sent) == (200, 200)
    warehouse.execute("update marts.segment set phone = '+440000000' where customer_id in ('c0005', 'c0006')")
    warehouse.execute("delete from marts.segment where customer_id = 'c0007'")
    warehouse.execute("insert into marts.segment values ('c9999', 'new@example.com', '+447000009999')")
    before = len(sink.requests_for("/crm"))
    second = SyncEngine(warehouse, _destination(sink, "/crm"), binding, POLICIES, now=NOON).run()
    records = [r for req in sink.requests_for("/crm")[before:] for r in req.body["records"]]
    assert sorted((r["customer_id"], r["action"]) for r in records) == [
        ("c0005", "upsert"),
        ("c0006", "upsert"),
        ("c0007", "delete"),
        ("c9999", "upsert"),
    ]
    assert (second.counts["added"], second.counts["changed"], second.counts["removed"]) == (1, 2, 1)
    # the delete carries the fields last delivered for that customer
    deleted = next(
        r
        for req in sink.requests_for("/crm")[before:]
        for r in req.body["records"]
        if r["action"] == "delete"
    )
    assert deleted["fields"] == {"phone": "+44700000007", "email": "c0007@example.com"}
    third = SyncEngine(warehouse, _destination(sink, "/crm"), binding, POLICIES, now=NOON).run()
    assert third.counts["planned"] == 0 and third.sent == 0


@pytest.mark.parametrize("mode", ["upsert", "mirror", "message"])
def test_a_null_key_alone_is_rejected_not_sent(warehouse, sink, mode) -> None:
    """With no other bad key in the segment (a NOT IN over an empty set is true for null)."""
    warehouse.execute("insert into marts.segment values (null, 'x@example.com', '+1')")
    binding = _binding(mode=mode, channel="sms" if mode == "message" else None)
    result = SyncEngine(warehouse, _destination(sink), binding, PolicyConfig(), now=NOON).run()
    assert result.skipped_by_reason.get("null_key") == 1
    delivered = _delivered(sink)
    assert None not in delivered and len(delivered) == result.sent


def test_null_and_duplicate_keys_are_rejected_not_sent(warehouse, sink) -> None:
    warehouse.execute(
        """insert into marts.segment values (null, 'x@example.com', '+1'), ('c0001', 'dup', '+2'),
           ('', 'e@example.com', '+3'), ('   ', 's@example.com', '+4'), (' c0002', 'lead@example.com', '+5')"""
    )
    result = SyncEngine(
        warehouse, _destination(sink), _binding(mode="upsert", channel=None), POLICIES, now=NOON
    ).run()
    # null, empty and all-space keys are null keys; ' c0002' is a key of its own (not trimmed)
    assert result.skipped_by_reason == {"duplicate_key": 2, "null_key": 3}
    assert "c0001" not in _delivered(sink) and result.sent == 200
    assert " c0002" in _delivered(sink)


def test_failures_are_retried_on_later_runs_then_dead_lettered(warehouse, sink) -> None:
    sink.reject_ids(["c0004"], "invalid number", retryable=True)
    sink.reject_ids(["c0008"], "blocked", retryable=False)
    policies = PolicyConfig(max_attempts=2)
    binding = _binding(mode="upsert", channel=None)
    first = SyncEngine(warehouse, _destination(sink), binding, policies, now=NOON).run()
    assert (first.sent, first.failed, first.dead_letters) == (198, 1, 1)
    second = SyncEngine(warehouse, _destination(sink), binding, policies, now=NOON).run()
    assert (second.sent, second.failed) == (0, 1)  # only the retryable one is tried again
    third = SyncEngine(warehouse, _destination(sink), binding, policies, now=NOON).run()
    assert (third.sent, third.failed, third.dead_letters) == (0, 0, 1)
    statuses = dict(
        warehouse.execute(
            "select customer_id, status from tideline_sync.delivery_ledger where customer_id in ('c0004', 'c0008')"
        ).fetchall()
    )
    assert statuses == {"c0004": "dead_letter", "c0008": "dead_letter"}


def test_transient_http_errors_do_not_lose_or_duplicate(warehouse, sink) -> None:
    sink.fail_every(3, status=429, retry_after=0)
    # every third request fails, whoever sends it: with 4 workers one batch can be unlucky on
    # several tries in a row, so it gets 8 (the chance all fail is about 1 in 2,000 per batch)
    result = SyncEngine(
        warehouse,
        _destination(sink, attempts=8),
        _binding(mode="upsert", channel=None),
        POLICIES,
        now=NOON,
        workers=4,
    ).run()
    accepted = Counter(
        r["customer_id"]
        for req in sink.requests_for("/sms")
        if req.status == 200
        for r in req.body["records"]
    )
    assert result.sent == 200 and set(accepted.values()) == {1} and len(accepted) == 200


@pytest.mark.slow  # a child process killed, or a timeout waited out
def test_a_sync_killed_mid_run_resumes_and_every_customer_gets_exactly_one_message(tmp_path, sink) -> None:
    """A real process is killed (SIGKILL) while batches are in flight; the rerun finishes the job.
    Records carry their idempotency key, so the endpoint keeps one message per key."""
    db = tmp_path / "crash.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create schema marts")
    con.execute(
        "create table marts.dim_customers as select 'c' || i as customer_id, true as sms_opt_in, "
        "'UTC' as timezone from range(2000) t(i)"
    )
    con.execute(
        "create table marts.segment as select customer_id, customer_id as email, '+44' || customer_id as phone "
        "from marts.dim_customers"
    )
    con.close()
    sink.delay_next(10_000, 0.05)  # every request is slow: the kill lands mid-sync
    script = textwrap.dedent(f"""
        import datetime as dt, duckdb, os
        from activation.config import PolicyConfig, SyncBinding
        from activation.destinations.webhook import WebhookDestination
        from activation.engine import SyncEngine
        os.environ["TEST_WEBHOOK_SECRET"] = {SECRET!r}
        d = WebhookDestination.from_config("sms", {{"url": {sink.url("/sms")!r}, "secret_env": "TEST_WEBHOOK_SECRET",
                                                    "max_batch_size": 20}})
        b = SyncBinding("segment", "marts.segment", "sms", "message", "sms", {{"phone": "phone"}}, "crash")
        SyncEngine(duckdb.connect({str(db)!r}), d, b, PolicyConfig(), now=dt.datetime(2026, 3, 2, 12), workers=2).run()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[2])
    deadline = time.monotonic() + 60
    while sink.count_records() < 400 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = sink.count_records()
    assert 0 < partial < 2000, "the kill should land mid-sync"

    sink.delay_next(0, 0)
    con = duckdb.connect(str(db))
    binding = SyncBinding("segment", "marts.segment", "sms", "message", "sms", {"phone": "phone"}, "crash")
    result = SyncEngine(con, _destination(sink, batch=20), binding, PolicyConfig(), now=NOON).run()
    per_customer: dict[str, set[str]] = {}
    for key, customer in (
        (r["idempotency_key"], r["customer_id"])
        for req in sink.requests_for("/sms")
        for r in req.body["records"]
    ):
        per_customer.setdefault(customer, set()).add(key)
    assert len(per_customer) == 2000  # nobody lost
    assert all(len(keys) == 1 for keys in per_customer.values())  # one message (one key) per customer
    statuses = Counter(
        s for (s,) in con.execute("select status from tideline_sync.delivery_ledger").fetchall()
    )
    assert statuses == {"sent": 2000}
    assert result.sent > 0


class _GenericOnly(DestinationDefaults):
    """The webhook without its fast path (it declares encoded_batches = False): the engine falls
    back to send_batch with records."""

    def __init__(self, inner: WebhookDestination):
        self.inner = inner
        self.name, self.kind, self.max_batch_size = inner.name, inner.kind, inner.max_batch_size

    def validate(self) -> None:
        self.inner.validate()

    def send_batch(self, records, context):
        return self.inner.send_batch(records, context)

    def close(self) -> None:
        self.inner.close()


def test_records_encoded_by_the_warehouse_match_the_python_encoding(warehouse, sink) -> None:
    """The fast path's JSON (built in SQL) carries the same records as the generic path."""
    warehouse.execute(
        """create table marts.tricky as
           select customer_id, email, phone,
                  case when customer_id = 'c0001' then 'Zoë "quoted" \\ back' || chr(10) || 'slash/tab' || chr(9)
                       when customer_id = 'c0002' then null else '日本語 ✓' end as note,
                  cast(right(customer_id, 3) as integer) * 0.25 as amount,
                  [1, 2, 3] as tags, right(customer_id, 1) = '1' as flag
           from marts.segment"""
    )
    # a destination field may map any column, the key included, and one column to two fields
    fields = {
        "email": "email",
        "note": "note",
        "amount": "amount",
        "tags": "tags",
        "flag": "flag",
        "external_id": "customer_id",
        "contact": "email",
    }
    for path, destination in (
        ("/fast", _destination(sink, "/fast")),
        ("/slow", _GenericOnly(_destination(sink, "/slow"))),
    ):
        binding = SyncBinding("tricky", "marts.tricky", path.strip("/"), "upsert", None, fields, "enc")
        result = SyncEngine(warehouse, destination, binding, POLICIES, now=NOON).run()
        assert result.sent == 200, path
    fast = {r["customer_id"]: r for req in sink.requests_for("/fast") for r in req.body["records"]}
    slow = {r["customer_id"]: r for req in sink.requests_for("/slow") for r in req.body["records"]}
    assert len(fast) == 200
    # the same records; only the keys differ, as the two syncs name different destinations
    assert {c: (r["action"], r["fields"]) for c, r in fast.items()} == {
        c: (r["action"], r["fields"]) for c, r in slow.items()
    }
    assert fast["c0001"]["fields"]["note"] == 'Zoë "quoted" \\ back\nslash/tab\t'
    assert fast["c0002"]["fields"]["note"] is None and fast["c0003"]["fields"]["tags"] == [1, 2, 3]
    assert fast["c0003"]["fields"]["external_id"] == "c0003"
    assert fast["c0003"]["fields"]["contact"] == fast["c0003"]["fields"]["email"] == "c0003@example.com"
    # the key is a UUID: the first 128 bits of sha256(destination|segment|customer|field hash)
    assert all(len(k) == 36 and k.count("-") == 4 for k in (r["idempotency_key"] for r in fast.values()))


def test_many_windows_and_variants_deliver_each_record_once(warehouse, sink, monkeypatch) -> None:
    monkeypatch.setattr(engine_module, "WINDOW_RECORDS", 30)  # 200 records: several ledger windows
    binding = _binding(
        channel="push",
        campaign="win",
        variants={"A": {"text": "a"}, "B": {"text": "b"}, "C": {"text": "c"}},
        variant_weights={"A": 0.2, "B": 0.3, "C": 0.5},
    )
    result = SyncEngine(
        warehouse, _destination(sink, "/push", batch=7), binding, POLICIES, now=NOON, workers=3
    ).run()
    delivered = _delivered(sink, "/push")
    tokyo = sum(1 for i in range(1, 201) if i % 7 == 0)  # quiet hours there at noon UTC: deferred
    assert result.sent == len(delivered) == 200 - tokyo and set(delivered.values()) == {1}
    for request in sink.requests_for("/push"):
        assert len(request.body["records"]) <= 7
        assert request.body["content"]["text"] == request.body["variant"].lower()
    ledger = dict(
        warehouse.execute(
            "select status, count(*) from tideline_sync.delivery_ledger where sync_id = ? group by 1",
            [result.sync_id],
        ).fetchall()
    )
    assert ledger == {"sent": 200 - tokyo, "deferred": tokyo}


def test_a_run_that_dies_after_sending_is_folded_by_the_next_without_resending(warehouse, sink) -> None:
    class DiesBeforeFolding(SyncEngine):
        def _fold_state(self, not_sent: int = 0) -> None:
            raise KeyboardInterrupt("killed after the sends, before the state was folded")

    binding = _binding(mode="upsert", channel=None, campaign="crm")
    with pytest.raises(KeyboardInterrupt):
        DiesBeforeFolding(warehouse, _destination(sink, "/crm"), binding, POLICIES, now=NOON).run()
    assert len(_delivered(sink, "/crm")) == 200
    second = SyncEngine(warehouse, _destination(sink, "/crm"), binding, POLICIES, now=NOON).run()
    assert second.sent == 0 and second.counts["planned"] == 0  # every key already sent: nothing resent
    state = warehouse.execute(
        "select count(*) from tideline_sync.synced_state where sync_key = ?", [binding.sync_key]
    ).fetchone()[0]
    assert state == 200  # ... and folded into the state, so the next diff is empty
    assert set(_delivered(sink, "/crm").values()) == {1}


def test_renaming_a_mapped_field_resyncs_every_row(warehouse, sink) -> None:
    first = _binding(mode="upsert", channel=None, campaign="crm")
    SyncEngine(warehouse, _destination(sink, "/crm"), first, POLICIES, now=NOON).run()
    renamed = SyncBinding(
        "segment", "marts.segment", "sms", "upsert", None, {"mobile": "phone", "email": "email"}, "crm"
    )
    again = SyncEngine(warehouse, _destination(sink, "/crm"), renamed, POLICIES, now=NOON).run()
    assert (again.counts["changed"], again.sent) == (200, 200)


def test_a_ledger_from_before_uuid_keys_is_converted_and_nothing_is_sent_twice(warehouse, sink) -> None:
    """Old ledgers held the full sha256 hex key and an md5 field hash; the upgrade keeps every
    message already sent as sent."""
    binding = _binding(campaign="legacy")
    warehouse.execute("create schema tideline_sync")
    warehouse.execute("create sequence tideline_sync.log_seq")
    warehouse.execute(
        """create table tideline_sync.delivery_log (
               seq bigint default nextval('tideline_sync.log_seq'), idempotency_key varchar not null,
               sync_key varchar not null, sync_id varchar not null, customer_id varchar not null,
               action varchar not null, status varchar not null, reason varchar, error varchar,
               attempt integer not null default 0, remote_id varchar, channel varchar, campaign varchar,
               variant varchar, content_version varchar, recorded_at timestamp not null)"""
    )
    warehouse.execute(
        """create table tideline_sync.synced_state (sync_key varchar not null, customer_id varchar not null,
               field_hash varchar not null, synced_at timestamp not null)"""
    )
    warehouse.execute("insert into tideline_sync.synced_state values ('x', 'c0001', 'abc', now()::timestamp)")
    warehouse.execute(  # the old code's key for campaign legacy, version v1: customers 1..100 got it
        f"""insert into tideline_sync.delivery_log (idempotency_key, sync_key, sync_id, customer_id, action, status,
                                                    attempt, channel, campaign, content_version, recorded_at)
            select sha256(concat_ws('|', 'sms', 'segment', customer_id, 'legacy:v1')), '{binding.sync_key}', 'old',
                   customer_id, 'send', 'sent', 1, 'sms', 'legacy', 'v1', timestamp '2026-02-01'
            from marts.segment where customer_id <= 'c0100'"""
    )
    result = SyncEngine(warehouse, _destination(sink), binding, POLICIES, now=NOON).run()
    delivered = _delivered(sink)
    assert delivered and max(delivered) > "c0100" and min(delivered) > "c0100"
    assert result.sent == len(delivered)
    legacy_state = warehouse.execute("select count(*) from tideline_sync.synced_state_md5").fetchone()[0]
    assert legacy_state == 1  # set aside, not dropped


@pytest.mark.slow  # a child process killed, or a timeout waited out
def test_an_smtp_sync_killed_mid_batch_loses_at_most_the_messages_being_handed_over(tmp_path) -> None:
    """SMTP delivery is not idempotent: a record in flight when the process dies is never resent.
    The delivery journal records each accepted message at once, so after a SIGKILL only the
    messages being handed over at that instant (at most one per worker) are `unknown`; every
    other customer gets exactly one message once the next run finishes the job."""
    from tideline.demo.sinks.smtp_sink import SmtpSink

    db = tmp_path / "smtp.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create schema marts")
    con.execute(
        "create table marts.dim_customers as select 'c' || lpad(cast(i as varchar), 3, '0') as customer_id, "
        "true as email_opt_in, 'UTC' as timezone from range(300) t(i)"
    )
    con.execute(
        "create table marts.segment as select customer_id, customer_id || '@example.com' as email "
        "from marts.dim_customers"
    )
    con.close()
    with SmtpSink() as smtp:
        smtp.data_delay = 0.01
        host, port = smtp.address
        script = textwrap.dedent(f"""
            import datetime as dt, duckdb, os
            from activation.config import PolicyConfig, SyncBinding
            from activation.destinations.smtp_email import SmtpEmailDestination
            from activation.engine import SyncEngine
            os.environ["TIDELINE_TRACKING_SECRET"] = "sync-engine-test-tracking-secret-0123"
            d = SmtpEmailDestination.from_config("email", {{"host": {host!r}, "port": {port}, "from_address": "shop@example.com",
                "unsubscribe_base_url": "http://127.0.0.1:1/u", "max_batch_size": 25}})
            b = SyncBinding("segment", "marts.segment", "email", "message", "email", {{"email": "email"}}, "crash",
                            content={{"subject": "Hi", "text": "Hello"}})
            SyncEngine(duckdb.connect({str(db)!r}), d, b, PolicyConfig(), now=dt.datetime(2026, 3, 2, 12), workers=2).run()
        """)
        proc = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[2])
        deadline = time.monotonic() + 60
        while len(smtp.messages) < 80 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        smtp.data_delay = 0.0
        partial = len(smtp.messages)
        assert 0 < partial < 300, "the kill should land mid-sync"

        from activation.destinations.smtp_email import SmtpEmailDestination

        destination = SmtpEmailDestination.from_config(
            "email",
            {
                "host": host,
                "port": port,
                "from_address": "shop@example.com",
                "unsubscribe_base_url": "http://127.0.0.1:1/u",
                "max_batch_size": 25,
            },
            {"TIDELINE_TRACKING_SECRET": "sync-engine-test-tracking-secret-0123"},  # the killed run's
        )
        binding = SyncBinding(
            "segment",
            "marts.segment",
            "email",
            "message",
            "email",
            {"email": "email"},
            "crash",
            content={"subject": "Hi", "text": "Hello"},
        )
        con = duckdb.connect(str(db))
        result = SyncEngine(con, destination, binding, PolicyConfig(), now=NOON, workers=2).run()
        received = Counter(str(m["To"]) for m in smtp.messages)
    assert set(received.values()) == {1}  # nobody got a message twice
    assert result.unknown <= 2  # at most the message each of the 2 workers was handing over
    statuses = dict(
        con.execute("select status, count(*) from tideline_sync.delivery_ledger group by 1").fetchall()
    )
    assert statuses.get("sent", 0) + statuses.get("unknown", 0) == 300
    assert statuses.get("unknown", 0) == result.unknown
    # every customer not marked unknown got their message; an unknown one may or may not have
    unknown = {
        c
        for (c,) in con.execute(
            "select customer_id from tideline_sync.delivery_ledger where status = 'unknown'"
        ).fetchall()
    }
    assert {f"c{i:03d}@example.com" for i in range(300)} - {f"{c}@example.com" for c in unknown} <= set(
        received
    )
    recovered = con.execute(
        "select count(*) from tideline_sync.delivery_log where reason like 'accepted before an interrupted run died%'"
    ).fetchone()[0]
    assert recovered > 0  # in-flight batches the journal showed as delivered became `sent`
    released = con.execute(
        "select count(*) from tideline_sync.delivery_log where status = 'released'"
    ).fetchone()[0]
    assert released > 0  # ... and records queued but never handed over were sent by the rerun
    assert not list(tmp_path.glob("smtp.duckdb.sync-journal/*.journal"))  # the journal was consumed


def test_a_mirror_delete_reaches_an_audience_with_the_identifiers_to_remove(warehouse, tmp_path) -> None:
    """Each run uses a fresh state folder, so the destination cannot fall back on what it
    remembers: the hashed email in remove.csv comes from the delete record itself."""
    import csv
    import hashlib

    from activation.destinations.audience_files import AudienceFilesDestination

    def destination(run: int) -> AudienceFilesDestination:
        return AudienceFilesDestination.from_config(
            "ads",
            {
                "directory": str(tmp_path / "aud"),
                "identifiers": ["email"],
                "state_dir": str(tmp_path / f"state{run}"),
            },
        )

    binding = SyncBinding("segment", "marts.segment", "ads", "mirror", None, {"email": "email"}, "ads")
    SyncEngine(warehouse, destination(1), binding, POLICIES, now=NOON).run()
    warehouse.execute("delete from marts.segment where customer_id in ('c0003', 'c0004')")
    second = SyncEngine(warehouse, destination(2), binding, POLICIES, now=NOON).run()
    assert (second.counts["removed"], second.sent, second.failed) == (2, 2, 0)
    removed = list(csv.DictReader((tmp_path / "aud" / "segment" / second.sync_id / "remove.csv").open()))
    expected = {hashlib.sha256(f"c000{i}@example.com".encode()).hexdigest() for i in (3, 4)}
    assert {row["email_sha256"] for row in removed} == expected


def test_a_key_duplicated_after_it_was_synced_is_rejected_when_it_would_send(warehouse, sink) -> None:
    """Reruns look for duplicates among the rows the diff would send: a duplicate whose row
    differs is rejected (not sent, and in mirror mode not deleted either); an exact copy of a
    synced row sends nothing and is not reported."""
    binding = _binding(mode="mirror", channel=None, campaign="crm")
    SyncEngine(warehouse, _destination(sink, "/crm"), binding, POLICIES, now=NOON).run()
    warehouse.execute(
        """insert into marts.segment
           select customer_id, email, phone from marts.segment where customer_id = 'c0010'   -- exact copy
           union all select 'c0020', 'other@example.com', '+4470000020'                       -- differs"""
    )
    before = len(sink.requests_for("/crm"))
    second = SyncEngine(warehouse, _destination(sink, "/crm"), binding, POLICIES, now=NOON).run()
    assert second.sent == 0 and second.counts["planned"] == 0
    assert second.skipped_by_reason == {"duplicate_key": 2}  # both rows of c0020
    assert len(sink.requests_for("/crm")) == before  # nothing sent, c0020 not deleted


def _statuses(con: duckdb.DuckDBPyConnection, sync_key: str | None = None) -> Counter:
    where, params = ("where sync_key = ?", [sync_key]) if sync_key else ("", [])
    return Counter(
        dict(
            con.execute(
                f"select status, count(*) from tideline_sync.delivery_ledger {where} group by 1", params
            ).fetchall()
        )
    )


def _smtp_destination(smtp, **overrides):
    from activation.destinations.smtp_email import SmtpEmailDestination

    host, port = smtp.address
    config = {
        "host": host,
        "port": port,
        "from_address": "shop@example.com",
        "unsubscribe_base_url": "http://127.0.0.1:1/u",
        "max_batch_size": 25,
        "retry_base_seconds": 0.01,
        **overrides,
    }
    return SmtpEmailDestination.from_config("email", config)


EMAIL = SyncBinding(
    "segment",
    "marts.segment",
    "email",
    "message",
    "email",
    {"email": "email"},
    "mail",
    content={"subject": "Hi", "text": "Hello"},
)


ALL_DAY = PolicyConfig(quiet_hours_start=0, quiet_hours_end=0)  # no quiet hours


@pytest.mark.slow  # a child process killed, or a timeout waited out
def test_an_email_without_a_reply_to_data_is_unknown_never_dead_lettered_or_resent(warehouse) -> None:
    """The server keeps a message but answers the end of DATA after the client's DATA timeout:
    the message is `unknown` in the ledger (counted as possibly delivered), not a dead letter,
    and no later run sends it again."""
    from tideline.demo.sinks.smtp_sink import SmtpSink

    with SmtpSink() as smtp:
        smtp.late_ack_next(1, 1.2)
        destination = _smtp_destination(smtp, timeout_seconds=0.3, data_timeout_seconds=0.6)
        first = SyncEngine(warehouse, destination, EMAIL, ALL_DAY, now=NOON, workers=1).run()
        assert (first.unknown, first.failed, first.dead_letters) == (1, 0, 0)
        assert first.sent == 179  # 180 with consent, one of them unknown
        second = SyncEngine(warehouse, destination, EMAIL, ALL_DAY, now=NOON, workers=1).run()
        time.sleep(0.6)  # the late acknowledgement is over
        counts = smtp.message_id_counts()
    assert second.sent == 0 and second.unknown == 0  # the unknown one is not planned again
    assert len(counts) == 180 and set(counts.values()) == {1}
    assert _statuses(warehouse) == {"sent": 179, "unknown": 1, "skipped": 20}


def test_a_batch_whose_last_try_timed_out_is_unknown_not_failed(warehouse, sink) -> None:
    """An HTTP batch answered only after the client's timeout may have been processed (here it
    was): its records are `unknown`, not failures that later runs resend and finally dead-letter."""
    sink.delay_next(2, 2.0)  # the first two batches are processed and answered after the timeout
    binding = _binding(mode="upsert", channel=None, campaign="crm")
    destination = _destination(sink, "/crm", batch=25, attempts=1, timeout=0.5)
    first = SyncEngine(warehouse, destination, binding, POLICIES, now=NOON, workers=1).run()
    assert (first.sent, first.unknown, first.failed, first.dead_letters) == (150, 50, 0, 0)
    assert first.failure_share == 0.0
    requests = len(sink.requests_for("/crm"))
    second = SyncEngine(warehouse, destination, binding, POLICIES, now=NOON, workers=1).run()
    assert second.sent == 0 and len(sink.requests_for("/crm")) == requests  # nothing resent
    assert _statuses(warehouse) == {"sent": 150, "unknown": 50}
    assert len(sink.key_counts()) == 200 and set(sink.key_counts().values()) == {1}


def _backoff_binding() -> SyncBinding:
    return _binding(mode="upsert", channel=None, campaign="backoff")


def test_a_long_retry_after_on_the_last_try_holds_the_next_run(warehouse, sink, tmp_path) -> None:
    """The receiver's last answer was 429 with Retry-After: 600. The next run (seconds later) sends
    nothing: its records are deferred, with reason retry_after, until that time."""
    sink.fail_next(1000, status=429, retry_after=600)
    destination = _destination(sink, attempts=1)
    first = SyncEngine(
        warehouse, destination, _backoff_binding(), POLICIES, now=NOON, journal_dir=tmp_path
    ).run()
    assert first.failed == 200
    asked = time.time() + 600
    sink.fail_next(0)
    sink.reset()
    second = SyncEngine(
        warehouse, destination, _backoff_binding(), POLICIES, now=NOON, journal_dir=tmp_path
    ).run()
    assert sink.requests == [] and second.sent == 0
    assert second.skipped_by_reason == {"retry_after": 200}
    rows = warehouse.execute(
        "select count(*), min(not_before), max(not_before) from tideline_sync.delivery_ledger "
        "where status = 'deferred' and reason = 'retry_after'"
    ).fetchone()
    assert rows[0] == 200
    until = rows[2].replace(tzinfo=dt.UTC).timestamp()
    assert rows[1] == rows[2] and asked - 5 < until < asked + 5


def test_a_short_retry_after_on_the_last_try_makes_the_next_run_wait(warehouse, sink, tmp_path) -> None:
    sink.fail_next(1000, status=503, retry_after=2)
    destination = _destination(sink, attempts=1)
    SyncEngine(warehouse, destination, _backoff_binding(), POLICIES, now=NOON, journal_dir=tmp_path).run()
    not_before = time.time() + 2
    sink.reset()
    second = SyncEngine(
        warehouse, destination, _backoff_binding(), POLICIES, now=NOON, journal_dir=tmp_path
    ).run()
    assert second.sent == 200
    assert min(r.received_at for r in sink.requests) >= not_before - 0.5


@pytest.mark.slow
def test_a_kill_resends_only_the_batches_in_flight_and_a_consent_change_delivers_nothing_twice(
    tmp_path,
) -> None:
    """A sync is killed (SIGKILL) mid-run; before the rerun one customer withdraws consent, which
    moves every batch boundary (batch Idempotency-Keys no longer match). Each batch's
    deliveries are journaled as soon as it is back, so the rerun resends only the batches that
    were in flight, and the receiver dedupes those per record key: every customer gets one message."""
    db = tmp_path / "kill.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create schema marts")
    con.execute(
        "create table marts.dim_customers as select 'c' || lpad(cast(i as varchar), 4, '0') as customer_id, "
        "true as sms_opt_in, 'UTC' as timezone from range(2000) t(i)"
    )
    con.execute(
        "create table marts.segment as select customer_id, '+44' || customer_id as phone from marts.dim_customers"
    )
    con.close()
    with HttpSink(secret=SECRET) as sink:  # dedupes by batch key and by record key
        sink.delay_next(10_000, 0.05)
        script = textwrap.dedent(f"""
            import datetime as dt, duckdb, os
            from activation.config import PolicyConfig, SyncBinding
            from activation.destinations.webhook import WebhookDestination
            from activation.engine import SyncEngine
            os.environ["TEST_WEBHOOK_SECRET"] = {SECRET!r}
            d = WebhookDestination.from_config("sms", {{"url": {sink.url("/sms")!r}, "secret_env": "TEST_WEBHOOK_SECRET",
                                                        "max_batch_size": 20}})
            b = SyncBinding("segment", "marts.segment", "sms", "message", "sms", {{"phone": "phone"}}, "kill")
            SyncEngine(duckdb.connect({str(db)!r}), d, b, PolicyConfig(), now=dt.datetime(2026, 3, 2, 12), workers=2).run()
        """)
        proc = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[2])
        deadline = time.monotonic() + 60
        while sink.count_records() < 600 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        before = sink.count_records()
        assert 0 < before < 2000, "the kill should land mid-sync"
        first_request = sink.requests_for("/sms")[0]
        moved = first_request.body["records"][0]["customer_id"]  # the first customer of the plan

        sink.delay_next(0, 0)
        con = duckdb.connect(str(db))
        con.execute("update marts.dim_customers set sms_opt_in = false where customer_id = ?", [moved])
        binding = SyncBinding("segment", "marts.segment", "sms", "message", "sms", {"phone": "phone"}, "kill")
        SyncEngine(con, _destination(sink, batch=20), binding, PolicyConfig(), now=NOON, workers=2).run()
        processed, received = sink.key_counts(), sink.received_key_counts()
    resent = sum(n - 1 for n in received.values())
    # the batches in flight when the kill landed (one per worker; two per worker of margin): the
    # outcome journal holds every batch that came back, so those are recorded, not resent
    bound = 2 * 2 * 20
    assert resent <= bound, f"{resent} records resent after the kill (at most {bound} expected)"
    assert len(processed) == 2000 and set(processed.values()) == {1}  # nobody lost, nobody twice
    assert _statuses(con) == {"sent": 2000}


@pytest.mark.slow  # a child process killed, or a timeout waited out
def test_an_audience_sync_killed_after_its_sends_is_finalised_by_the_next_run(tmp_path) -> None:
    """SIGKILL after the ledger write, in the fold: the parts are on disk and every record is
    `sent`, but no add.csv or manifest was written. The rerun has nothing to send and still
    finalises the killed run's folder."""
    import csv
    import json

    from activation.destinations.audience_files import AudienceFilesDestination

    db, audiences = tmp_path / "aud.duckdb", tmp_path / "audiences"
    con = duckdb.connect(str(db))
    con.execute("create schema marts")
    con.execute(
        "create table marts.segment as select 'c' || i as customer_id, 'u' || i || '@example.com' as email "
        "from range(300) t(i)"
    )
    con.close()
    script = textwrap.dedent(f"""
        import datetime as dt, duckdb, os, signal
        from activation.config import PolicyConfig, SyncBinding
        from activation.destinations.audience_files import AudienceFilesDestination
        from activation.engine import SyncEngine

        class DiesInFold(SyncEngine):
            def _fold_state(self, not_sent=0):
                os.kill(os.getpid(), signal.SIGKILL)

        d = AudienceFilesDestination.from_config("ads", {{"directory": {str(audiences)!r}, "identifiers": ["email"],
                                                          "max_batch_size": 50}})
        b = SyncBinding("segment", "marts.segment", "ads", "mirror", None, {{"email": "email"}}, "ads")
        DiesInFold(duckdb.connect({str(db)!r}), d, b, PolicyConfig(), now=dt.datetime(2026, 3, 2, 12)).run()
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[2], timeout=120
    )
    assert proc.returncode == -signal.SIGKILL
    (killed,) = (audiences / "segment").iterdir()
    assert len(list(killed.glob("add-part-*.csv"))) == 6 and not (killed / "manifest.json").exists()

    con = duckdb.connect(str(db))
    destination = AudienceFilesDestination.from_config(
        "ads", {"directory": str(audiences), "identifiers": ["email"], "max_batch_size": 50}
    )
    binding = SyncBinding("segment", "marts.segment", "ads", "mirror", None, {"email": "email"}, "ads")
    rerun = SyncEngine(con, destination, binding, POLICIES, now=NOON).run()
    assert rerun.sent == 0 and rerun.counts["planned"] == 0
    manifest = json.loads((killed / "manifest.json").read_text())
    assert manifest["files"]["add"]["rows"] == 300 and manifest["recovered_by"] == rerun.sync_id
    assert len(list(csv.DictReader((killed / "add.csv").open()))) == 300
    assert [p.name for p in (audiences / "segment").iterdir()] == [killed.name]  # no empty folder


@pytest.mark.parametrize("mode", ["upsert", "mirror"])
def test_a_change_back_to_fields_delivered_before_is_sent_again(warehouse, sink, mode) -> None:
    """A -> B -> A: the third state has the field hash of the first, whose key is `sent` in the
    ledger; the destination holds B, so A must go out again (keyed by the customer's generation)."""
    binding = _binding(mode=mode, channel=None, campaign="crm")
    first = "+44700000005"

    def sync() -> list[dict]:
        before = len(sink.requests_for("/crm"))
        SyncEngine(warehouse, _destination(sink, "/crm"), binding, POLICIES, now=NOON).run()
        return [r for req in sink.requests_for("/crm")[before:] for r in req.body["records"]]

    assert len(sync()) == 200
    for phone in ("+44711111111", first):
        warehouse.execute("update marts.segment set phone = ? where customer_id = 'c0005'", [phone])
        sent = sync()
        assert [(r["customer_id"], r["fields"]["phone"]) for r in sent] == [("c0005", phone)]
    assert sync() == []  # and nothing more once the state holds it
    keys = warehouse.execute(
        "select count(distinct idempotency_key) from tideline_sync.delivery_log "
        "where customer_id = 'c0005' and status = 'sent'"
    ).fetchone()[0]
    assert keys == 3


def test_a_customer_back_in_a_mirror_with_the_fields_they_left_with_is_sent_again(warehouse, sink) -> None:
    """Mirror: removed (a delete is delivered), then back unchanged: the upsert's field hash equals
    the first delivery's, but the destination deleted the customer, so the upsert must go out."""
    binding = _binding(mode="mirror", channel=None, campaign="crm")
    row = warehouse.execute("select * from marts.segment where customer_id = 'c0007'").fetchone()

    def sync() -> list[tuple[str, str]]:
        before = len(sink.requests_for("/crm"))
        SyncEngine(warehouse, _destination(sink, "/crm"), binding, POLICIES, now=NOON).run()
        return [
            (r["customer_id"], r["action"])
            for req in sink.requests_for("/crm")[before:]
            for r in req.body["records"]
        ]

    assert len(sync()) == 200
    warehouse.execute("delete from marts.segment where customer_id = 'c0007'")
    assert sync() == [("c0007", "delete")]
    warehouse.execute("insert into marts.segment values (?, ?, ?)", list(row))
    assert sync() == [("c0007", "upsert")]
    assert sync() == []


def test_a_dry_run_says_how_long_the_send_will_take(warehouse, sink) -> None:
    """From the rate limit, and from what the destination's recent real runs reached: the slower.
    At NOON: on the wall clock, after 21:00 UTC quiet hours deferred everyone and nothing would send."""
    b = _binding(campaign="estimate")
    dry = SyncEngine(warehouse, _destination(sink), b, POLICIES, rate_per_second=50, now=NOON).run(
        dry_run=True
    )
    would = dry.counts["would_send"]
    assert 100 < would < 200  # consent and quiet hours leave some out
    assert dry.estimated_send_seconds == math.ceil(would / 50 * 10) / 10
    assert dry.estimate_basis == f"{would:,} records at the destination's rate limit of 50 records/s"
    assert sink.requests_for("/sms") == []
    unlimited = SyncEngine(warehouse, _destination(sink), b, POLICIES, now=NOON).run(dry_run=True)
    assert unlimited.estimated_send_seconds is None  # no limit, no real run of the destination yet
    assert "its own speed bounds it" in unlimited.estimate_basis

    warehouse.execute(
        """insert into tideline_sync.sync_runs (sync_id, sync_key, segment, destination, mode, dry_run,
               started_at, finished_at, sent, duration_seconds, status)
           values ('r1', 'other__sms', 'other', 'sms', 'message', false, now(), now(), 1000, 100, 'done')"""
    )  # an earlier real run of the destination reached 10 records/s: slower than the limit
    slower = SyncEngine(warehouse, _destination(sink), b, POLICIES, rate_per_second=50, now=NOON).run(
        dry_run=True
    )
    assert slower.estimated_send_seconds == math.ceil(would / 10 * 10) / 10
    assert "10 records/s reached by its recent runs" in slower.estimate_basis
