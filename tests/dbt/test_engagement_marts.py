"""The engagement marts on a hand-built ledger and landing zone, every expected value worked out by hand.

As of 2025-03-10 (cutoff 2025-03-11 00:00 UTC). conversion_window_days 7, bot_seconds_after_send 10.

Ledger (written with activation.ledger.ensure_schema, then plain inserts, BEFORE dbt builds):

- sync `spring:email` (segment spring_segment, mode message), campaign spring, variants A/B, run
  2025-03-03 09:00 (every ledger event of the run carries that time, as the engine writes it):
    m1 c1 A  in_flight -> sent
    m2 c2 B  in_flight -> sent
    m3 c3 A  in_flight -> sent       (hard bounce later)
    m4 c4 B  holdout                  (control: never sent; exposed_at 2025-03-03 09:00)
    m5 c5 A  in_flight -> failed      (counts as failed on 2025-03-03)
    m6 c6 A  skipped no_consent
- sync `news:sms` (segment news_segment, message), campaign news, no experiment: m7 c1 sent
  2025-03-04 12:00.
- not messages: a `crm:crm` upsert sync (channel null) and an `audience:ads` upsert sync that
  has a channel (email) and a campaign: mode upsert in sync_runs, so left out.

Engagement events (receiver JSON lines):

- e1 m1 opened 09:00:30 by GoogleImageProxy -> bot (user_agent); not a unique open.
- e2 m1 opened 10:00 by a desktop mail client -> human open.
- e3 m1 clicked 10:01 -> human click.
- e4 m2 clicked 09:00:05, 5 s after the send -> bot (seconds_after_send): m2 has no human open.
- esp:d1 delivered for m2, delivered twice by the provider (received 09:02 and 09:30) -> one
  row, deliveries 2, received_at 09:02.
- esp:b1 m3 bounced hard 09:05 -> c3/email suppressed (hard_bounced).
- m2 unsubscribed 2025-03-05 08:00; esp:c1 m2 complained 2025-03-05 09:00 -> c2/email
  suppressed (complained).
- e8: an open of an unknown message key (token campaign legacy, customer c9): kept,
  is_known_message false, message columns from the token.
- e9: an open dated 2025-03-11 (after the as-of day): ignored.
- a line without event_type: rejected (file, line 5, field event_type).

Orders (completed unless said):

- o1 c1 2025-03-05 10:00, 50: converts m1 (2 d 1 h after exposure) and m7 (22 h after).
- o2 c2 2025-03-09 09:00, 30: converts m2 (6 d after; inside the 7-day window).
- o3 c2 2025-03-10 09:01, 99: 7 d 1 min after m2: just outside the window.
- o4 c4 2025-03-04 09:00, 20: converts the holdout message m4 (1 d): in int_message_conversions,
  never in fct_campaign_performance.
- o5 c1 2025-03-02, 15: before any message, no conversion.
- o6 c3 2025-03-04 cancelled, 70: not a purchase.
- o7 c5, o8 c6 2025-02-01, 10 each: long before their messages, no conversion.

fct_campaign_performance (cost: email 0.001, sms 0.0075 per message from the seed):

- spring/A/email/2025-03-03: m1, m3 sent, m5 failed. sent 2, failed 1, bounced 1 (m3),
  hard_bounced 1, delivered 2 - 1 = 1, unique_opens 1 (m1), bot_opens 1 (e1), unique_clicks 1,
  unsubscribes 0, complaints 0, conversions 1 (o1), converters 1, revenue 50, cost 0.002.
  delivery_rate 1/2, delivery_failure_rate (1 + 1)/(2 + 1) = 2/3, bounce_rate 1/2,
  open_rate 1/1, click_rate 1/1, click_to_open_rate 1/1, conversion_rate 1/2,
  revenue_per_message 25, roi (50 - 0.002)/0.002 = 24999.
- spring/B/email/2025-03-03: m2 only (m4 is holdout). sent 1, delivered 1, unique_opens 0,
  unique_clicks 0 (the click was a bot), unsubscribes 1, complaints 1, conversions 1 (o2; o3
  is outside), revenue 30, cost 0.001: open_rate 0, click_to_open_rate null (0 opens),
  unsubscribe_rate 1, complaint_rate 1, conversion_rate 1, roi (30 - 0.001)/0.001 = 29999.
- news/all/sms/2025-03-04: m7. sent 1, delivered 1, conversions 1 (o1 again: each campaign
  gets its own credit), revenue 50, cost 0.0075, roi (50 - 0.0075)/0.0075 = 6665.666...
"""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from activation.ledger import ensure_schema
from tests.helpers import Warehouse, build_warehouse, write_csv, write_jsonl

pytestmark = pytest.mark.slow  # every test reads a warehouse built by dbt

AS_OF = "2025-03-10"
RUN = datetime(2025, 3, 3, 9, 0)
SMS_RUN = datetime(2025, 3, 4, 12, 0)


def key(n: int) -> str:
    """Message m<n>'s ledger key as the tracking tokens carry it (a UUID with dashes)."""
    return str(uuid.UUID(int=n))


def write_ledger(warehouse: Path) -> None:
    """The delivery ledger and sync runs, created by the ledger's own DDL, then filled."""
    con = duckdb.connect(str(warehouse))
    try:
        ensure_schema(con)
        log: list[tuple] = []

        def event(n, sync_key, customer, status, at, channel, campaign, variant, reason=None):
            log.append((key(n), sync_key, "run-" + sync_key, customer, "upsert", status, reason, channel,
                        campaign, variant, "v1", at))  # fmt: skip

        for n, customer, variant, outcome in (
            (1, "c1", "A", "sent"),
            (2, "c2", "B", "sent"),
            (3, "c3", "A", "sent"),
            (5, "c5", "A", "failed"),
        ):
            event(n, "spring:email", customer, "in_flight", RUN, "email", "spring", variant)
            event(n, "spring:email", customer, outcome, RUN, "email", "spring", variant)
        event(4, "spring:email", "c4", "holdout", RUN, "email", "spring", "B", "holdout")
        event(6, "spring:email", "c6", "skipped", RUN, "email", "spring", "A", "no_consent")
        event(7, "news:sms", "c1", "sent", SMS_RUN, "sms", "news", None)
        event(20, "crm:crm", "c1", "sent", RUN, None, "crm", None)
        event(21, "audience:ads", "c2", "sent", RUN, "email", "audience", None)
        con.executemany(
            """insert into tideline_sync.delivery_log (idempotency_key, sync_key, sync_id, customer_id,
                   action, status, reason, channel, campaign, variant, content_version, recorded_at)
               values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            log,
        )
        for sync_key, segment, destination, mode, started in (
            ("spring:email", "spring_segment", "email", "message", RUN),
            ("news:sms", "news_segment", "sms", "message", SMS_RUN),
            ("crm:crm", "crm_segment", "crm", "upsert", RUN),
            ("audience:ads", "audience", "ads_audience", "upsert", RUN),
        ):
            con.execute(
                """insert into tideline_sync.sync_runs (sync_id, sync_key, segment, destination, mode,
                       dry_run, started_at, status) values (?, ?, ?, ?, ?, false, ?, 'done')""",
                ["run-" + sync_key, sync_key, segment, destination, mode, started],
            )
    finally:
        con.close()


def write_landing_zone(raw: Path) -> None:
    write_csv(
        raw / "commerce/orders/orders.csv",
        [
            {"order_id": "o1", "customer_id": "c1", "ordered_at": "2025-03-05T10:00:00Z", "amount": "50"},
            {"order_id": "o2", "customer_id": "c2", "ordered_at": "2025-03-09T09:00:00Z", "amount": "30"},
            {"order_id": "o3", "customer_id": "c2", "ordered_at": "2025-03-10T09:01:00Z", "amount": "99"},
            {"order_id": "o4", "customer_id": "c4", "ordered_at": "2025-03-04T09:00:00Z", "amount": "20"},
            {"order_id": "o5", "customer_id": "c1", "ordered_at": "2025-03-02T09:00:00Z", "amount": "15"},
            {
                "order_id": "o6",
                "customer_id": "c3",
                "ordered_at": "2025-03-04T09:00:00Z",
                "amount": "70",
                "status": "cancelled",
            },
            {"order_id": "o7", "customer_id": "c5", "ordered_at": "2025-02-01T09:00:00Z", "amount": "10"},
            {"order_id": "o8", "customer_id": "c6", "ordered_at": "2025-02-01T09:00:00Z", "amount": "10"},
        ],
        columns=["order_id", "customer_id", "ordered_at", "amount", "status"],
    )
    proxy = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
    client = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"

    def tracked(event_id, event_type, n, at, agent=client, **extra):
        return {
            "event_id": event_id,
            "event_type": event_type,
            "occurred_at": at,
            "received_at": at,
            "source": "tracking",
            "message_key": key(n),
            "customer_id": {1: "c1", 2: "c2"}[n],
            "campaign": "spring",
            "variant": {1: "A", 2: "B"}[n],
            "channel": "email",
            "user_agent": agent,
            **extra,
        }

    def hook(event_id, event_type, n, customer, at, received, **extra):
        return {
            "event_id": f"esp:{event_id}",
            "event_type": event_type,
            "occurred_at": at,
            "received_at": received,
            "source": "webhook",
            "provider": "esp",
            "message_key": key(n),
            "customer_id": customer,
            "channel": "email",
            **extra,
        }

    link = {"url": "https://shop.example.com/spring", "link_index": 0}
    write_jsonl(
        raw / "engagement/events/2025-03-03/receiver-20250303T085900Z-1-1.jsonl",
        [
            tracked("e1", "opened", 1, "2025-03-03T09:00:30.000Z", agent=proxy),
            tracked("e2", "opened", 1, "2025-03-03T10:00:00.000Z"),
            tracked("e3", "clicked", 1, "2025-03-03T10:01:00.000Z", **link),
            tracked("e4", "clicked", 2, "2025-03-03T09:00:05.000Z", **link),
            hook("d1", "delivered", 2, "c2", "2025-03-03T09:01:00.000Z", "2025-03-03T09:02:00.000Z"),
            hook(
                "b1",
                "bounced",
                3,
                "c3",
                "2025-03-03T09:05:00.000Z",
                "2025-03-03T09:05:01.000Z",
                bounce_type="hard",
            ),  # fmt: skip
            hook("d1", "delivered", 2, "c2", "2025-03-03T09:01:00.000Z", "2025-03-03T09:30:00.000Z"),
        ],
    )
    write_jsonl(
        raw / "engagement/events/2025-03-05/receiver-20250305T000000Z-1-1.jsonl",
        [
            {
                "event_id": "u1",
                "event_type": "unsubscribed",
                "occurred_at": "2025-03-05T08:00:00.000Z",
                "source": "unsubscribe",
                "message_key": key(2),
                "customer_id": "c2",
                "segment": "spring_segment",
                "channel": "email",
            },
            hook("c1", "complained", 2, "c2", "2025-03-05T09:00:00.000Z", "2025-03-05T09:00:01.000Z"),
            {
                "event_id": "e8",
                "event_type": "opened",
                "occurred_at": "2025-03-05T12:00:00.000Z",
                "source": "tracking",
                "message_key": key(99),
                "customer_id": "c9",
                "campaign": "legacy",
                "channel": "email",
                "user_agent": client,
            },
            {
                "event_id": "e9",
                "event_type": "opened",
                "occurred_at": "2025-03-11T00:00:00.000Z",
                "message_key": key(1),
                "customer_id": "c1",
            },
            {"event_id": "e10", "occurred_at": "2025-03-05T00:00:00Z", "message_key": key(1)},
        ],
    )


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    root = tmp_path_factory.mktemp("engagement")
    write_landing_zone(root / "raw")
    write_ledger(root / "warehouse.duckdb")
    return build_warehouse(root / "raw", root / "warehouse.duckdb", AS_OF)


def test_messages_one_row_per_message_mode_ledger_key(warehouse: Warehouse) -> None:
    rows = {
        r["message_key"]: r
        for r in warehouse.dicts(
            """select message_key, segment, campaign, channel, variant, customer_id, status, skip_reason,
                      is_sent, is_holdout, is_failed, planned_at, sent_at, exposed_at, send_date
               from marts.fct_messages"""
        )
    }
    assert sorted(rows) == [key(n) for n in range(1, 8)]  # crm and audience syncs are not messages
    m1, m4, m5, m6, m7 = (rows[key(n)] for n in (1, 4, 5, 6, 7))
    assert (m1["segment"], m1["campaign"], m1["channel"], m1["variant"], m1["customer_id"]) == (
        "spring_segment",
        "spring",
        "email",
        "A",
        "c1",
    )
    assert (m1["status"], m1["is_sent"], m1["sent_at"], m1["exposed_at"]) == ("sent", True, RUN, RUN)
    assert str(m1["send_date"]) == "2025-03-03" and m1["planned_at"] == RUN
    assert (
        m4["status"],
        m4["is_holdout"],
        m4["is_sent"],
        m4["sent_at"],
        m4["exposed_at"],
        m4["variant"],
    ) == (
        "holdout",
        True,
        False,
        None,
        RUN,
        "B",
    )
    assert (m5["status"], m5["is_failed"], m5["exposed_at"], m5["send_date"]) == ("failed", True, None, None)
    assert (m6["status"], m6["skip_reason"], m6["is_sent"]) == ("skipped", "no_consent", False)
    assert (m7["channel"], m7["variant"], m7["segment"], m7["sent_at"]) == (
        "sms",
        None,
        "news_segment",
        SMS_RUN,
    )


def test_message_events_dedupe_redelivered_webhooks_and_flag_bots(warehouse: Warehouse) -> None:
    rows = {
        r["event_id"]: r
        for r in warehouse.dicts(
            """select event_id, message_key, customer_id, campaign, variant, event_type, received_at,
                      is_bot, bot_reason, is_human, seconds_since_sent, deliveries, is_known_message
               from marts.fct_message_events"""
        )
    }
    # e9 is after the as-of day; the line without event_type is rejected
    assert sorted(rows) == sorted(["e1", "e2", "e3", "e4", "esp:d1", "esp:b1", "u1", "esp:c1", "e8"])
    d1 = rows["esp:d1"]
    assert (d1["deliveries"], d1["received_at"]) == (2, datetime(2025, 3, 3, 9, 2))
    assert (d1["campaign"], d1["variant"]) == ("spring", "B")  # from the ledger, not the webhook
    flags = {e: (rows[e]["is_bot"], rows[e]["bot_reason"], rows[e]["seconds_since_sent"]) for e in rows}
    assert flags["e1"] == (True, "user_agent", 30)
    assert flags["e2"] == (False, None, 3600)
    assert flags["e3"] == (False, None, 3660)
    assert flags["e4"] == (True, "seconds_after_send", 5)
    assert flags["esp:d1"] == (False, None, 60)  # a delivery 60 s after the send is never a bot
    assert rows["e2"]["is_human"] and not rows["e4"]["is_human"]
    e8 = rows["e8"]
    assert (e8["is_known_message"], e8["campaign"], e8["customer_id"], e8["seconds_since_sent"]) == (
        False,
        "legacy",
        "c9",
        None,
    )


def test_conversions_inside_the_window_including_holdout(warehouse: Warehouse) -> None:
    rows = warehouse.query(
        """select message_key, order_id, is_holdout, order_amount, round(days_to_convert, 4)
           from intermediate.int_message_conversions order by message_key, order_id"""
    )
    assert [(m, o, h, float(a), float(d)) for m, o, h, a, d in rows] == [
        (key(1), "o1", False, 50.0, round(2 + 1 / 24, 4)),
        (key(2), "o2", False, 30.0, 6.0),  # o3 at 7 days + 1 minute is outside
        (key(4), "o4", True, 20.0, 1.0),  # holdout: here, not in campaign performance
        (key(7), "o1", False, 50.0, round(22 / 24, 4)),
    ]


def test_campaign_performance_counts_and_rates(warehouse: Warehouse) -> None:
    rows = {
        (r["campaign"], r["variant"], r["channel"], str(r["send_date"])): r
        for r in warehouse.dicts("select * from marts.fct_campaign_performance")
    }
    assert sorted(rows) == [
        ("news", "all", "sms", "2025-03-04"),
        ("spring", "A", "email", "2025-03-03"),
        ("spring", "B", "email", "2025-03-03"),
    ]
    counts = [
        "sent",
        "failed",
        "delivered",
        "bounced",
        "hard_bounced",
        "unique_opens",
        "bot_opens",
        "unique_clicks",
        "unsubscribes",
        "complaints",
        "conversions",
        "converters",
    ]
    a, b, news = (
        rows[("spring", "A", "email", "2025-03-03")],
        rows[("spring", "B", "email", "2025-03-03")],
        rows[("news", "all", "sms", "2025-03-04")],
    )
    assert [a[c] for c in counts] == [2, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1]
    assert [b[c] for c in counts] == [1, 0, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1]
    assert [news[c] for c in counts] == [1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1]
    money = lambda r: (float(r["revenue"]), float(r["cost"]))  # noqa: E731
    assert money(a) == (50.0, pytest.approx(0.002))
    assert money(b) == (30.0, pytest.approx(0.001))
    assert money(news) == (50.0, pytest.approx(0.0075))
    rates = [
        "delivery_rate",
        "delivery_failure_rate",
        "bounce_rate",
        "open_rate",
        "click_rate",
        "click_to_open_rate",
        "unsubscribe_rate",
        "complaint_rate",
        "conversion_rate",
        "revenue_per_message",
        "roi",
    ]
    assert [a[r] for r in rates] == pytest.approx([1 / 2, 2 / 3, 1 / 2, 1, 1, 1, 0, 0, 1 / 2, 25, 24999])
    assert b["click_to_open_rate"] is None  # no human opens: no denominator
    assert [b[r] for r in rates if r != "click_to_open_rate"] == pytest.approx(
        [1, 0, 0, 0, 0, 1, 1, 1, 30, 29999]
    )
    assert news["roi"] == pytest.approx((50 - 0.0075) / 0.0075)
    # SMS has no open pixel: no open rate, though its click rate is there
    assert (news["open_rate"], news["click_to_open_rate"], news["click_rate"]) == (None, None, 0)


def test_hard_bounces_and_complaints_become_suppressions(warehouse: Warehouse) -> None:
    assert warehouse.query(
        "select customer_id, channel, reason, since, events from marts.engagement_suppressions order by 1"
    ) == [
        ("c2", "email", "complained", datetime(2025, 3, 5, 9, 0), 1),
        ("c3", "email", "hard_bounced", datetime(2025, 3, 3, 9, 5), 1),
    ]


def test_bad_engagement_line_reaches_rejects_with_file_row_and_field(warehouse: Warehouse) -> None:
    assert warehouse.query(
        "select source_file, source_row, field, reason from marts.rejects where entity = 'engagement_events'"
    ) == [
        (
            "engagement/events/2025-03-05/receiver-20250305T000000Z-1-1.jsonl",
            5,
            "event_type",
            "event_type is empty",
        )
    ]


def test_a_fresh_warehouse_without_ledger_builds_empty_engagement_marts(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_csv(
        raw / "commerce/orders/orders.csv",
        [{"order_id": "o1", "customer_id": "c1", "ordered_at": "2025-03-05", "amount": "5"}],
    )
    built = build_warehouse(raw, tmp_path / "warehouse.duckdb", AS_OF)
    counts = built.query(
        """select (select count(*) from marts.fct_messages), (select count(*) from marts.fct_message_events),
                  (select count(*) from marts.fct_campaign_performance),
                  (select count(*) from marts.engagement_suppressions)"""
    )
    assert counts == [(0, 0, 0, 0)]
    tables = built.query(
        "select count(*) from information_schema.tables where table_schema = 'tideline_sync'"
    )
    assert tables == [(0,)]  # dbt did not create the ledger: activation/ledger.py owns it
