"""Hard bounces and complaints stop the next campaign, end to end, with no mocks of our own code.

1. dbt builds the warehouse from a landing zone (orders and email consent for c1..c4).
2. A real message sync (webhook destination -> HttpSink on loopback) sends campaign `welcome`
   by email to c1..c4 and writes the delivery ledger.
3. The provider reports, through the real receiver (uvicorn on loopback, signed webhook), a
   hard bounce of c2's message and a spam complaint about c3's (the receiver also revokes c3's
   email consent; c3 opts in again later, so consent alone would not stop the next campaign);
   an operator also puts c4 on tideline_sync.suppressions (unsubscribed, all channels).
4. dbt builds again: marts.engagement_suppressions holds c2 hard_bounced and c3 complained.
5. The next campaign `followup` sends to c1 only: c2 is skipped as suppressed:hard_bounced,
   c3 as suppressed:complained, c4 as suppressed:unsubscribed.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import duckdb
import pytest
import requests

from activation.config import PolicyConfig, SyncBinding
from activation.destinations.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookDestination, sign
from activation.engine import SyncEngine
from activation.ledger import suppress
from tests.helpers import build_warehouse, write_csv
from tests.integration.test_receiver import Receiver
from tideline.demo.sinks.http_sink import HttpSink

SECRET = "sink-secret"
HOOK_SECRET = "engagement-test-webhook-secret-0123456789"  # >= 32 bytes (activation.tokens)
TRACKING_SECRET = b"engagement-test-tracking-secret-0123456789"
NOON = dt.datetime(2026, 3, 2, 12, 0)
AS_OF = "2026-03-02"
CUSTOMERS = ["c1", "c2", "c3", "c4"]


def _binding(campaign: str) -> SyncBinding:
    return SyncBinding(
        segment="welcome",
        relation="marts.welcome",
        destination="esp",
        mode="message",
        channel="email",
        fields={"email": "email"},
        campaign=campaign,
    )


def _destination(sink: HttpSink) -> WebhookDestination:
    return WebhookDestination.from_config(
        "esp",
        {"url": sink.url("/esp"), "secret_env": "TEST_ESP_SECRET", "retry_base_seconds": 0.01},
        {"TEST_ESP_SECRET": SECRET},
    )


def _delivered(sink: HttpSink) -> list[str]:
    return sorted(r["customer_id"] for req in sink.requests_for("/esp") for r in req.body["records"])


@pytest.mark.slow  # dbt builds the warehouse twice
def test_hard_bounce_and_complaint_suppress_the_next_campaign(tmp_path: Path) -> None:
    raw, path = tmp_path / "raw", tmp_path / "warehouse.duckdb"
    write_csv(
        raw / "commerce/orders/orders.csv",
        [
            {"order_id": f"o{i}", "customer_id": c, "ordered_at": "2026-01-10", "amount": "10"}
            for i, c in enumerate(CUSTOMERS)
        ],
    )
    consents = [
        {"customer_id": c, "channel": "email", "status": "granted", "consented_at": "2026-01-01"}
        for c in CUSTOMERS
    ]
    # c3 opts in again after the complaint (whose consent revocation the receiver writes at 13:00):
    # consent alone would let the next campaign through; the complaint suppression does not
    consents.append(
        {"customer_id": "c3", "channel": "email", "status": "granted", "consented_at": "2026-03-02T14:00:00Z"}
    )
    write_csv(raw / "crm/consents/consents.csv", consents)
    build_warehouse(raw, path, AS_OF)
    policies = PolicyConfig()

    with HttpSink(secret=SECRET, dedupe=False) as sink:
        con = duckdb.connect(str(path))
        try:
            con.execute(
                "create table marts.welcome as select customer_id, customer_id || '@example.com' as email "
                "from marts.dim_customers"
            )
            first = SyncEngine(con, _destination(sink), _binding("welcome"), policies, now=NOON).run()
            keys = dict(
                con.execute(
                    "select customer_id, cast(idempotency_key as varchar) from tideline_sync.delivery_ledger "
                    "where status = 'sent'"
                ).fetchall()
            )
            suppress(con, "c4", "all", "unsubscribed")
        finally:
            con.close()
        assert first.sent == 4 and _delivered(sink) == CUSTOMERS

        receiver = Receiver(raw, tracking_secret=TRACKING_SECRET, webhook_secret=HOOK_SECRET)
        try:
            body = json.dumps(
                {
                    "events": [
                        {"event_id": "b-1", "type": "bounced", "bounce_type": "hard", "message_key": keys["c2"],
                         "customer_id": "c2", "occurred_at": "2026-03-02T12:00:40Z"},
                        {"event_id": "x-1", "type": "complained", "message_key": keys["c3"],
                         "customer_id": "c3", "occurred_at": "2026-03-02T13:00:00Z"},
                        {"event_id": "s-1", "type": "bounced", "bounce_type": "soft", "message_key": keys["c1"],
                         "customer_id": "c1", "occurred_at": "2026-03-02T12:01:00Z"},
                    ]
                }
            )  # fmt: skip
            stamp = str(int(time.time()))
            response = requests.post(
                f"{receiver.base_url}/webhooks/esp",
                data=body,
                headers={TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: sign(HOOK_SECRET, stamp, body)},
                timeout=5,
            )
            assert response.status_code == 200, response.text
        finally:
            receiver.stop()

        warehouse = build_warehouse(raw, path, AS_OF)
        # a soft bounce (c1) suppresses nothing
        assert warehouse.query(
            "select customer_id, channel, reason from marts.engagement_suppressions order by 1"
        ) == [("c2", "email", "hard_bounced"), ("c3", "email", "complained")]

        con = duckdb.connect(str(path))
        try:
            second = SyncEngine(con, _destination(sink), _binding("followup"), policies, now=NOON).run()
            reasons = dict(
                con.execute(
                    "select customer_id, reason from tideline_sync.delivery_ledger where sync_id = ? "
                    "and status = 'skipped'",
                    [second.sync_id],
                ).fetchall()
            )
        finally:
            con.close()
        assert second.sent == 1 and _delivered(sink) == sorted([*CUSTOMERS, "c1"])
        assert reasons == {
            "c2": "suppressed:hard_bounced",
            "c3": "suppressed:complained",
            "c4": "suppressed:unsubscribed",
        }
