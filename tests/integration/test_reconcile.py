"""Records whose delivery is unknown, settled after the fact (activation.reconcile).

Real components on loopback: the SMTP sink's outbox, the HTTP sink's accepted-keys log, provider
webhooks through the real engagement receiver, the sync engine and a DuckDB warehouse file. What
nothing can settle is reported (the sync's outstanding count, the Dagster check) and a person
decides with `settle`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import requests

from activation import reconcile
from activation.config import PolicyConfig, SyncBinding
from activation.destinations.smtp_email import SmtpEmailDestination
from activation.destinations.webhook import WebhookDestination, sign
from activation.engine import SyncEngine
from tests.helpers import opted_in_segment
from tideline.demo.sinks.http_sink import HttpSink
from tideline.demo.sinks.smtp_sink import SmtpSink

NOON = dt.datetime(2026, 3, 2, 12, 0)
ALL_DAY = PolicyConfig(quiet_hours_start=0, quiet_hours_end=0)
SECRET = "reconcile-secret"
RECEIVER_WEBHOOK_SECRET = "reconcile-test-receiver-webhook-secret-0123456789"


@pytest.fixture
def warehouse(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    return opted_in_segment(duckdb.connect(str(tmp_path / "w.duckdb")), 40)


def _statuses(con: duckdb.DuckDBPyConnection) -> Counter:
    return Counter(
        dict(con.execute("select status, count(*) from tideline_sync.delivery_ledger group by 1").fetchall())
    )


def _webhook(sink: HttpSink, **overrides) -> WebhookDestination:
    config = {
        "url": sink.url("/sms"),
        "secret_env": "TEST_RECONCILE_SECRET",
        "max_batch_size": 5,
        "retry_attempts": 1,
        "timeout_seconds": 0.4,
        **overrides,
    }
    return WebhookDestination.from_config("sms", config, {"TEST_RECONCILE_SECRET": SECRET})


SMS = SyncBinding("segment", "marts.segment", "sms", "message", "sms", {"phone": "phone"}, "spring")


@pytest.mark.slow  # several seconds: real servers and whole syncs (Dagster for the check)
def test_unknown_emails_are_confirmed_or_released_from_the_smtp_outbox(
    warehouse, tmp_path, monkeypatch
) -> None:
    """Four messages get no reply to the end of DATA: the server lost two (held, then dropped)
    and kept two (acknowledged too late). The next run looks them up in the server's outbox by
    Message-ID: the kept ones become `sent`, the lost ones `released` and go out once; every
    customer ends with exactly one message and nothing is left unknown."""
    outbox = tmp_path / "outbox"
    binding = SyncBinding(
        "segment",
        "marts.segment",
        "email",
        "message",
        "email",
        {"email": "email"},
        "spring",
        content={"subject": "Hi", "text": "Hello"},
    )
    with SmtpSink(out_dir=outbox) as smtp:
        smtp.hang_next(2, 1.2)  # the first two messages: held past the timeout, never stored
        smtp.late_ack_next(2, 1.2)  # the next two: stored, acknowledged past the timeout
        host, port = smtp.address
        destination = SmtpEmailDestination.from_config(
            "email",
            {
                "host": host,
                "port": port,
                "from_address": "shop@example.com",
                "unsubscribe_base_url": "http://127.0.0.1:1/u",
                "timeout_seconds": 0.3,
                "data_timeout_seconds": 0.6,
                "retry_attempts": 5,  # each dropped connection costs the messages not yet sent a try
                "retry_base_seconds": 0.01,
                "delivery_log_dir": str(outbox),
            },
        )
        first = SyncEngine(warehouse, destination, binding, ALL_DAY, now=NOON, workers=1).run()
        assert (first.sent, first.unknown, first.unknown_outstanding) == (36, 4, 4)
        time.sleep(1.3)  # the held connections are over
        second = SyncEngine(warehouse, destination, binding, ALL_DAY, now=NOON, workers=1).run()
        counts = smtp.message_id_counts()
    assert (second.confirmed, second.released, second.sent, second.unknown_outstanding) == (2, 2, 2, 0)
    assert len(counts) == 40 and set(counts.values()) == {1}  # everyone once, nobody twice
    assert _statuses(warehouse) == {"sent": 40}
    reasons = Counter(
        r
        for (r,) in warehouse.execute(
            "select reason from tideline_sync.delivery_log where sync_id = ? and reason is not null",
            [second.sync_id],
        ).fetchall()
    )
    assert reasons == {
        "confirmed delivered by the SMTP server's outbox after an unknown outcome": 2,
        "not delivered according to the SMTP server's outbox; planned again": 2,
    }


def test_the_http_sinks_accepted_keys_settle_timed_out_batches(warehouse, tmp_path) -> None:
    """Two batches time out: the receiver processed one (answered late) and not the other (held,
    then refused). Its accepted-keys log settles both: 5 confirmed, 5 released and sent once."""
    with HttpSink(out_dir=tmp_path / "sink", secret=SECRET) as sink:
        sink.delay_next(2, 1.0)
        sink.fail_next(1, status=503)  # the first request: held and refused, the second: processed late
        destination = _webhook(sink, delivery_log_dir=str(tmp_path / "sink"))
        first = SyncEngine(warehouse, destination, SMS, ALL_DAY, now=NOON, workers=1).run()
        assert (first.sent, first.unknown) == (30, 10)
        second = SyncEngine(warehouse, destination, SMS, ALL_DAY, now=NOON, workers=1).run()
        processed = sink.key_counts()
    assert (second.confirmed, second.released, second.sent, second.unknown_outstanding) == (5, 5, 5, 0)
    assert len(processed) == 40 and set(processed.values()) == {1}
    assert _statuses(warehouse) == {"sent": 40}


def _post_provider_events(base_url: str, events: list[dict]) -> None:
    body = json.dumps({"events": events}).encode()
    timestamp = str(int(time.time()))
    response = requests.post(
        f"{base_url}/webhooks/smsgw",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Tideline-Timestamp": timestamp,
            "X-Tideline-Signature": sign(RECEIVER_WEBHOOK_SECRET, timestamp, body),
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text


def test_provider_webhooks_confirm_unknown_messages_and_the_rest_waits_for_a_person(
    warehouse, tmp_path, monkeypatch
) -> None:
    """A gateway that cannot be asked: its delivery webhooks, appended to the landing zone by the
    engagement receiver, confirm some unknown messages. The others stay unknown, are counted as
    outstanding, and are never resent until a person settles them."""
    from tests.conftest import TEST_TRACKING_SECRET
    from tideline.demo.local import running_receiver

    landing = tmp_path / "landing"
    with HttpSink(secret=SECRET) as sink:
        sink.delay_next(2, 1.0)  # two batches processed, answered after the timeout
        destination = _webhook(sink)
        first = SyncEngine(warehouse, destination, SMS, ALL_DAY, now=NOON, workers=1).run()
        unknown = [
            (k, c)
            for k, c in warehouse.execute(
                "select cast(idempotency_key as varchar), customer_id from tideline_sync.delivery_ledger "
                "where status = 'unknown' order by customer_id"
            ).fetchall()
        ]
        assert first.unknown == len(unknown) == 10
        with running_receiver(landing, TEST_TRACKING_SECRET, RECEIVER_WEBHOOK_SECRET) as receiver:
            events = [
                {
                    "event_id": f"e{i}",
                    "type": kind,
                    "message_key": key,
                    "customer_id": customer,
                    "occurred_at": "2026-03-02T12:00:05Z",
                    "channel": "sms",
                }
                for i, ((key, customer), kind) in enumerate(
                    zip(unknown[:7], ["delivered"] * 5 + ["bounced", "clicked"], strict=True)
                )
            ]
            _post_provider_events(receiver, events)
        requests_before = len(sink.requests)
        evidence = [reconcile.ProviderEvents(landing)]
        second = SyncEngine(warehouse, destination, SMS, ALL_DAY, now=NOON, evidence=evidence).run()
        assert (second.confirmed, second.released, second.sent) == (7, 0, 0)
        assert second.unknown_outstanding == 3 and reconcile.outstanding(warehouse, SMS.sync_key)[0] == 3
        assert len(sink.requests) == requests_before  # nothing resent on a guess

        # a person asks the gateway: one never arrived, the other two did
        later = [k for k, _ in unknown[7:]]
        assert (
            reconcile.settle(warehouse, SMS.sync_key, "released", keys=later[:1], note="gateway: not found")
            == 1
        )
        assert reconcile.settle(warehouse, SMS.sync_key, "sent", note="gateway: delivered") == 2
        third = SyncEngine(warehouse, destination, SMS, ALL_DAY, now=NOON, evidence=evidence).run()
        processed = sink.key_counts()
    assert (third.sent, third.unknown_outstanding) == (1, 0)
    assert len(processed) == 40 and set(processed.values()) == {1}
    assert _statuses(warehouse) == {"sent": 40}


def test_settle_accepts_only_sent_or_released(warehouse) -> None:
    with pytest.raises(ValueError, match="sent, released"):
        reconcile.settle(warehouse, SMS.sync_key, "failed")


@pytest.mark.slow  # several seconds: real servers and whole syncs (Dagster for the check)
def test_the_sync_asset_reports_unknown_deliveries_in_a_check(warehouse, tmp_path, monkeypatch) -> None:
    """The Dagster asset's unknown_deliveries check warns while records of the sync are unknown,
    with how many and since when, and passes once they are settled."""
    from orchestration.activation import _sync_asset
    from orchestration.resources import ActivationConfigResource, PipelineSettings, WarehouseResource

    warehouse.close()
    config = tmp_path / "activation.yml"
    with HttpSink(secret=SECRET) as sink:
        sink.delay_next(1, 1.0)
        monkeypatch.setenv("TEST_RECONCILE_SECRET", SECRET)
        config.write_text(
            json.dumps(
                {
                    "destinations": {
                        "sms": {
                            "type": "webhook",
                            "url": sink.url("/sms"),
                            "secret_env": "TEST_RECONCILE_SECRET",
                            "max_batch_size": 5,
                            "retry_attempts": 1,
                            "timeout_seconds": 0.4,
                        }
                    },
                    "policies": {"quiet_hours": {"start": 0, "end": 0}},
                }
            )
        )
        resources = {
            "warehouse": WarehouseResource(path=str(tmp_path / "w.duckdb")),
            "activation": ActivationConfigResource.from_environment(str(config), os.environ, workers=1),
            "pipeline": PipelineSettings(raw_dir=str(tmp_path / "landing")),
        }
        asset = _sync_asset(SMS)

        def check() -> dg.AssetCheckEvaluation:
            result = dg.materialize([asset], resources=resources, raise_on_error=True)
            (evaluation,) = [
                e for e in result.get_asset_check_evaluations() if e.check_name == "unknown_deliveries"
            ]
            return evaluation

        first = check()
        assert not first.passed and first.severity == dg.AssetCheckSeverity.WARN
        assert first.metadata["unknown_outstanding"].value == 5
        assert first.metadata["oldest_unknown"].value  # when it became unknown
        con = duckdb.connect(str(tmp_path / "w.duckdb"))
        reconcile.settle(con, SMS.sync_key, "sent", note="checked with the gateway")
        con.close()
        second = check()
    assert second.passed and second.metadata["unknown_outstanding"].value == 0


def test_the_local_destinations_give_the_default_configs_destinations_their_delivery_logs(
    tmp_path: Path,
) -> None:
    """With the local destinations (`make run`, `tideline run` / `tideline ui`), the email, SMS, push
    and CRM destinations of config/activation.yml settle unknown sends from what the local sinks
    recorded (the SMTP outbox, the HTTP sink's accepted keys); without them they have no log."""
    from activation.config import load_config
    from tideline.demo.local import demo_secrets, local_destinations

    names = ("email", "sms", "push", "crm")

    def evidence(env: dict[str, str]) -> dict[str, list[Path]]:
        config = load_config(None, env=env)
        found = {}
        for name in names:
            destination = config.destination(name)
            found[name] = [Path(e.directory) for e in destination.delivery_evidence()]
            destination.close()
        return found

    with local_destinations(tmp_path, {}) as local:
        env = {**demo_secrets(tmp_path, {}), **local.values}
        email, http = local.outbox / "email", local.outbox / "http"
        assert evidence(env) == {"email": [email], "sms": [http], "push": [http], "crm": [http]}
    secrets_only = {k: v for k, v in env.items() if "DELIVERY_LOG" not in k}
    assert evidence(secrets_only) == dict.fromkeys(names, [])
