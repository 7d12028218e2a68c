"""Attribution on a small landing zone and delivery ledger, every expected credit worked out by hand.

As of 2025-06-30; channel_roi's recent period covers 2025-06-01 .. 2025-06-30 (30 days), its
all_time period 2025-05-01 (the first order, o0) .. 2025-06-30. Lookback 30 days, half-life 7 days.

- c1 browsed anonymously (a1) from google/cpc on 06-10 10:00 (session s1), signed up on that
  device, came back from facebook/paid_social on 06-20 09:00 (s2), came back directly on 06-21
  (s3: no utm, no touch), got email m1 (sent 06-25 08:00), opened it at 09:00 and clicked it at
  09:05 (one touch: the click), and bought o1 (100.00) on 06-28 12:00. Path: paid_search,
  paid_social, email. An older order o0 (05-01, 20.00) had no touch: unattributed, and outside
  the ROI period.
- c2 got email m2 (06-14 10:00), clicked at 11:00 and bought o2 (50.00) on 06-15 10:00.
- c3 got email m3 whose only open came from Gmail's image proxy a second after sending (a bot
  open: no touch) and bought o3 (70.00) on 06-29: unattributed.
- c4 came from instagram/social on 06-22 (s4) and never bought: a non-converting path. c4's SMS
  m4 (06-22) was sent but never engaged with: cost only.
- a9, a visitor never identified, came from google/cpc: no customer, no touch.

Markov chain of the paths [paid_search, paid_social, email] (converted), [email] (converted),
[social] (not): start -> paid_search, email, social 1/3 each, then straight through; email ->
conversion. P(conversion) = 2/3. Without paid_search or paid_social 1/3 (effect 1/2 each),
without email 0 (effect 1), without social 2/3 (effect 0). Shares 0.25, 0.25, 0.5, 0.
"""

from __future__ import annotations

import csv
import datetime as dt
import uuid
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from activation.ledger import ensure_schema
from models_ml.attribution import load_paths, removal_effects, write_removal_effects
from orchestration.attribution import channel_removal_effects
from orchestration.resources import PipelineSettings, WarehouseResource
from tests.helpers import Warehouse, build_warehouse, dbt_build, write_csv, write_jsonl
from tideline.settings import DBT_PROJECT_DIR

pytestmark = pytest.mark.slow  # every test reads one warehouse built by dbt

AS_OF = "2025-06-30"
M1, M2, M3, M4 = (str(uuid.UUID(int=i)) for i in (1, 2, 3, 4))
HUMAN_UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari/605.1.15"
PROXY_UA = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
MESSAGES = [  # key, customer, channel, campaign, sent at
    (M1, "c1", "email", "summer_sale", "2025-06-25 08:00:00"),
    (M2, "c2", "email", "summer_sale", "2025-06-14 10:00:00"),
    (M3, "c3", "email", "summer_sale", "2025-06-20 10:00:00"),
    (M4, "c4", "sms", "summer_sms", "2025-06-22 10:00:00"),
]


def write_landing_zone(raw: Path) -> None:
    write_csv(
        raw / "crm/contacts/contacts.csv",
        [
            {"customer_id": f"c{i}", "email": f"person{i}@example.com", "created_at": "2025-01-01"}
            for i in (1, 2, 3, 4)
        ],
    )
    write_csv(
        raw / "commerce/orders/orders.csv",
        [
            {"order_id": "o0", "customer_id": "c1", "ordered_at": "2025-05-01T12:00:00Z", "amount": "20.00"},
            {"order_id": "o1", "customer_id": "c1", "ordered_at": "2025-06-28T12:00:00Z", "amount": "100.00"},
            {"order_id": "o2", "customer_id": "c2", "ordered_at": "2025-06-15T10:00:00Z", "amount": "50.00"},
            {"order_id": "o3", "customer_id": "c3", "ordered_at": "2025-06-29T10:00:00Z", "amount": "70.00"},
        ],
    )
    write_jsonl(
        raw / "events/2025-06.jsonl",
        [
            {
                "event_id": "e1",
                "event_type": "page_view",
                "occurred_at": "2025-06-10T10:00:00Z",
                "anonymous_id": "a1",
                "session_id": "s1",
                "utm_source": "google",
                "utm_medium": "cpc",
                "utm_campaign": "brand_search",
            },
            {
                "event_id": "e2",
                "event_type": "signup",
                "occurred_at": "2025-06-10T10:05:00Z",
                "anonymous_id": "a1",
                "customer_id": "c1",
                "session_id": "s1",
            },
            {
                "event_id": "e3",
                "event_type": "page_view",
                "occurred_at": "2025-06-20T09:00:00Z",
                "customer_id": "c1",
                "session_id": "s2",
                "utm_source": "facebook",
                "utm_medium": "paid_social",
                "utm_campaign": "retargeting",
            },
            {
                "event_id": "e4",
                "event_type": "page_view",
                "occurred_at": "2025-06-21T09:00:00Z",
                "customer_id": "c1",
                "session_id": "s3",
            },
            {
                "event_id": "e5",
                "event_type": "page_view",
                "occurred_at": "2025-06-22T12:00:00Z",
                "customer_id": "c4",
                "session_id": "s4",
                "utm_source": "instagram",
                "utm_medium": "social",
            },
            {
                "event_id": "e6",
                "event_type": "page_view",
                "occurred_at": "2025-06-23T12:00:00Z",
                "anonymous_id": "a9",
                "session_id": "s9",
                "utm_source": "google",
                "utm_medium": "cpc",
            },
        ],
    )

    def engagement(event_id: str, kind: str, key: str, customer: str, at: str, ua: str) -> dict:
        return {
            "event_id": event_id,
            "event_type": kind,
            "occurred_at": at,
            "received_at": at,
            "source": "tracking",
            "message_key": key,
            "customer_id": customer,
            "campaign": "summer_sale",
            "channel": "email",
            "user_agent": ua,
            **({"link_index": "0", "url": "https://shop.example.com/sale"} if kind == "clicked" else {}),
        }

    write_jsonl(
        raw / "engagement/events/2025-06-25.jsonl",
        [
            engagement("g1", "opened", M1, "c1", "2025-06-25T09:00:00Z", HUMAN_UA),
            engagement("g2", "clicked", M1, "c1", "2025-06-25T09:05:00Z", HUMAN_UA),
            engagement("g3", "clicked", M2, "c2", "2025-06-14T11:00:00Z", HUMAN_UA),
            engagement("g4", "opened", M3, "c3", "2025-06-20T10:00:01Z", PROXY_UA),
        ],
    )


def write_ledger(warehouse: Path) -> None:
    con = duckdb.connect(str(warehouse))
    try:
        ensure_schema(con)
        for channel, segment in (("email", "summer_buyers"), ("sms", "summer_buyers")):
            con.execute(
                "insert into tideline_sync.sync_runs (sync_id, sync_key, segment, destination, mode, dry_run, "
                "started_at, status) values (?, ?, ?, ?, 'message', false, '2025-06-14 09:00:00', 'succeeded')",
                [f"run-{channel}", f"{segment}__{channel}", segment, channel],
            )
        for key, customer, channel, campaign, sent_at in MESSAGES:
            for status, at in (("in_flight", sent_at), ("sent", sent_at)):
                con.execute(
                    "insert into tideline_sync.delivery_log (idempotency_key, sync_key, sync_id, customer_id, "
                    "action, status, channel, campaign, content_version, recorded_at) "
                    "values (?, ?, ?, ?, 'insert', ?, ?, ?, 'v1', ?)",
                    [
                        key,
                        f"summer_buyers__{channel}",
                        f"run-{channel}",
                        customer,
                        status,
                        channel,
                        campaign,
                        at,
                    ],
                )
    finally:
        con.close()


@pytest.fixture(scope="module")
def short_lookback(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    """The same landing zone built with `--vars attribution_lookback_days: 10`, the Markov asset run
    as the pipeline runs it (Dagster, on the warehouse dbt built), then the second dbt invocation
    with the same vars."""
    base = tmp_path_factory.mktemp("attribution_lookback")
    write_landing_zone(base / "raw")
    path = base / "warehouse.duckdb"
    write_ledger(path)
    short = {"attribution_lookback_days": 10}
    built = build_warehouse(base / "raw", path, AS_OF, short)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [channel_removal_effects],
            instance=instance,
            resources={
                "warehouse": WarehouseResource(path=str(path)),
                "pipeline": PipelineSettings(raw_dir=str(base / "raw"), as_of=AS_OF),
            },
        )
    assert result.success
    dbt_build(path, AS_OF, short, select="source:ml+")
    return built


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    """The pipeline's order: dbt build, the Markov asset's functions, then the models downstream of
    source ml again (what the second dbt asset does)."""
    base = tmp_path_factory.mktemp("attribution")
    write_landing_zone(base / "raw")
    path = base / "warehouse.duckdb"
    write_ledger(path)
    built = build_warehouse(base / "raw", path, AS_OF)
    con = duckdb.connect(str(path))
    try:
        effects = removal_effects(load_paths(con))
        write_removal_effects(con, effects, dt.date(2025, 6, 30), dt.datetime(2025, 6, 30, 6, 0))
    finally:
        con.close()
    dbt_build(path, AS_OF, select="source:ml+")
    return built


def test_touchpoints(warehouse: Warehouse) -> None:
    touches = {
        r[0]: r[1:]
        for r in warehouse.query(
            "select touchpoint_id, customer_id, cast(touched_at as varchar), channel, touch_type, campaign, "
            "source_medium, message_key from marts.fct_touchpoints"
        )
    }
    assert touches == {
        "session:s1": (
            "c1",
            "2025-06-10 10:00:00",
            "paid_search",
            "web_session",
            "brand_search",
            "google / cpc",
            None,
        ),
        "session:s2": (
            "c1",
            "2025-06-20 09:00:00",
            "paid_social",
            "web_session",
            "retargeting",
            "facebook / paid_social",
            None,
        ),
        "session:s4": (
            "c4",
            "2025-06-22 12:00:00",
            "social",
            "web_session",
            None,
            "instagram / social",
            None,
        ),
        # the click beats the earlier open of the same message
        f"message:{M1}": (
            "c1",
            "2025-06-25 09:05:00",
            "email",
            "click",
            "summer_sale",
            "tideline / email",
            M1,
        ),
        f"message:{M2}": (
            "c2",
            "2025-06-14 11:00:00",
            "email",
            "click",
            "summer_sale",
            "tideline / email",
            M2,
        ),
    }  # no s3 (direct), no s9 (never identified), no m3 (proxy open)


def test_removal_effects_by_hand(warehouse: Warehouse) -> None:
    effects = {
        r[0]: r[1:]
        for r in warehouse.query(
            "select channel, removal_effect, removal_share, paths, converting_paths from ml.channel_removal_effects"
        )
    }
    assert set(effects) == {"paid_search", "paid_social", "email", "social"}
    expected = {
        "paid_search": (0.5, 0.25, 1, 1),
        "paid_social": (0.5, 0.25, 1, 1),
        "email": (1.0, 0.5, 2, 2),
        "social": (0.0, 0.0, 1, 0),
    }
    for channel, (effect, share, paths, converting) in expected.items():
        got = effects[channel]
        assert got[0] == pytest.approx(effect, abs=1e-12), channel
        assert got[1] == pytest.approx(share, abs=1e-12), channel
        assert got[2:] == (paths, converting), channel


def test_credit_per_model_by_hand(warehouse: Warehouse) -> None:
    rows = warehouse.query(
        "select order_id, touchpoint_id, model, weight, attributed_revenue, touch_position, path_length "
        "from marts.fct_attribution order by order_id, model, touch_position"
    )
    credit = {(o, t, m): (w, r) for o, t, m, w, r, _, _ in rows}
    assert {r[0] for r in rows} == {"o1", "o2"}  # o0 and o3 had no touch
    s1, s2, m1 = "session:s1", "session:s2", f"message:{M1}"
    assert {(r[1], r[5], r[6]) for r in rows if r[0] == "o1"} == {(s1, 1, 3), (s2, 2, 3), (m1, 3, 3)}
    # time decay: ages 18 d 2 h, 8 d 3 h and 3 d 2 h 55 min before o1, half-life 7 days
    ages = [18 + 2 / 24, 8 + 3 / 24, 3 + (2 * 60 + 55) / 1440]
    decay = [2 ** (-a / 7) for a in ages]
    expected_o1 = {
        "first_touch": [1, 0, 0],
        "last_touch": [0, 0, 1],
        "linear": [1 / 3, 1 / 3, 1 / 3],
        "time_decay": [d / sum(decay) for d in decay],
        "position_based": [0.4, 0.2, 0.4],
        "data_driven": [0.25, 0.25, 0.5],  # removal shares paid_search, paid_social, email
    }
    for model, weights in expected_o1.items():
        for touch, weight in zip((s1, s2, m1), weights, strict=True):
            got_weight, got_revenue = credit[("o1", touch, model)]
            assert got_weight == pytest.approx(weight, abs=1e-9), (model, touch)
            assert got_revenue == pytest.approx(100 * weight, abs=1e-7), (model, touch)
    # raw 2^(-age/7) = 0.1669, 0.4473, 0.7341 (sum 1.3483)
    assert expected_o1["time_decay"] == pytest.approx([0.1238, 0.3318, 0.5445], abs=1e-4)
    for model in expected_o1:  # one touch: all the credit, whatever the model
        assert credit[("o2", f"message:{M2}", model)] == pytest.approx((1.0, 50.0))
    sums = warehouse.query(
        "select order_id, model, sum(weight) from marts.fct_attribution group by order_id, model"
    )
    assert len(sums) == 12 and all(abs(total - 1) < 1e-9 for _, _, total in sums)


def _seed_costs() -> list[dict]:
    with (DBT_PROJECT_DIR / "seeds/channel_costs.csv").open() as fh:
        return list(csv.DictReader(fh))


def _price(rows: list[dict], channel: str, cost_type: str, day: dt.date) -> float:
    """The seed's price for `channel` valid on `day` (valid_to inclusive; empty = open)."""
    for row in rows:
        start = dt.date.fromisoformat(row["valid_from"])
        end = dt.date.fromisoformat(row["valid_to"]) if row["valid_to"] else dt.date.max
        if row["channel"] == channel and row["cost_type"] == cost_type and start <= day <= end:
            return float(row["amount"])
    return 0.0


def test_channel_roi(warehouse: Warehouse) -> None:
    roi = {
        (r[0], r[1]): r[2:]
        for r in warehouse.query(
            "select channel, model, conversions, attributed_revenue, cost, roi, roas from marts.channel_roi "
            "where period = 'recent'"
        )
    }
    seed = _seed_costs()
    june = [dt.date(2025, 6, d) for d in range(1, 31)]
    cost = {
        # three emails sent in June (m1, m2, m3), one SMS (m4)
        "email": sum(_price(seed, "email", "per_message", dt.date(2025, 6, d)) for d in (25, 14, 20)),
        "sms": _price(seed, "sms", "per_message", dt.date(2025, 6, 22)),
        # ad spend: each day of the 30-day period at that day's price
        "paid_search": sum(_price(seed, "paid_search", "per_day", d) for d in june),
        "paid_social": sum(_price(seed, "paid_social", "per_day", d) for d in june),
    }
    assert cost["email"] > 0 and cost["paid_search"] > 0  # the seed prices these channels
    # ROI only where the channel has spend: email and sms have sending fees only
    with_spend = {"paid_search", "paid_social"}
    # linear: o1's 100.00 in thirds, o2's 50.00 all email; o3 (70.00) unattributed
    linear = {
        "paid_search": (1 / 3, 100 / 3),
        "paid_social": (1 / 3, 100 / 3),
        "email": (1 / 3 + 1, 100 / 3 + 50),
        "sms": (0.0, 0.0),
        "unattributed": (1.0, 70.0),
    }
    for channel, (conversions, revenue) in linear.items():
        got = roi[(channel, "linear")]
        spent = cost.get(channel, 0.0)
        assert got[0] == pytest.approx(conversions, abs=1e-9), channel
        assert got[1] == pytest.approx(revenue, abs=1e-7), channel
        assert got[2] == pytest.approx(spent, abs=1e-9), channel
        if channel in with_spend:
            assert got[3] == pytest.approx((revenue - spent) / spent, rel=1e-9), channel
            assert got[4] == pytest.approx(revenue / spent, rel=1e-9), channel
        else:
            assert got[3] is None and got[4] is None, channel
    # last touch: email gets both orders
    assert roi[("email", "last_touch")][:2] == pytest.approx((2.0, 150.0))
    assert roi[("paid_search", "last_touch")][:2] == pytest.approx((0.0, 0.0))
    # every model hands out exactly the period's completed orders (o1, o2, o3) and their revenue
    totals = warehouse.query(
        "select model, sum(conversions), sum(attributed_revenue) from marts.channel_roi "
        "where period = 'recent' group by model"
    )
    assert len(totals) == 6
    for model, conversions, revenue in totals:
        assert conversions == pytest.approx(3.0, abs=1e-9), model
        assert revenue == pytest.approx(220.0, abs=1e-7), model


def test_channel_roi_says_what_its_cost_covers(warehouse: Warehouse) -> None:
    """Sending fees alone give no ROI (it would be thousands of percent): cost per conversion
    instead, and cost_basis says which case a row is."""
    rows = {
        r["channel"]: r
        for r in warehouse.dicts(
            "select * from marts.channel_roi where period = 'recent' and model = 'linear'"
        )
    }
    seed = _seed_costs()
    email_fees = sum(_price(seed, "email", "per_message", dt.date(2025, 6, d)) for d in (25, 14, 20))
    email = rows["email"]
    assert (email["cost_basis"], email["messages_sent"]) == ("sending_fees_only", 3)
    assert (email["spend"], email["sending_fees"]) == (0, pytest.approx(email_fees))
    assert email["roi"] is None and email["roas"] is None
    assert email["cost_per_conversion"] == pytest.approx(email_fees / (1 / 3 + 1))
    sms = rows["sms"]  # one SMS sent, never engaged with: fees, no conversion
    assert (sms["cost_basis"], sms["messages_sent"], sms["conversions"]) == ("sending_fees_only", 1, 0)
    assert sms["cost_per_conversion"] is None
    paid = rows["paid_search"]
    assert (paid["cost_basis"], paid["messages_sent"], paid["sending_fees"]) == ("spend", 0, 0)
    assert (
        paid["cost"]
        == paid["spend"]
        == pytest.approx(30 * _price(seed, "paid_search", "per_day", dt.date(2025, 6, 1)))
    )
    assert paid["cost_per_conversion"] == pytest.approx(paid["cost"] / (1 / 3))
    unattributed = rows["unattributed"]  # social (c4, never bought) has neither credit nor cost: no row
    assert (unattributed["cost_basis"], unattributed["cost"], unattributed["roi"]) == ("none", 0, None)
    assert unattributed["cost_per_conversion"] is None and "social" not in rows


def test_channel_roi_periods_are_labelled_and_all_time_agrees_with_the_credit(warehouse: Warehouse) -> None:
    """recent: the 30 days up to the as-of date; all_time: from the first order (o0, 05-01). The
    all_time rows carry exactly fct_attribution's credit per channel and model."""
    periods = warehouse.query(
        "select distinct period, cast(period_start as varchar), cast(period_end as varchar), period_days "
        "from marts.channel_roi order by 1"
    )
    assert periods == [
        ("all_time", "2025-05-01", "2025-06-30", 61),
        ("recent", "2025-06-01", "2025-06-30", 30),
    ]
    all_time = {
        (r[0], r[1]): r[2:]
        for r in warehouse.query(
            "select channel, model, conversions, attributed_revenue, cost from marts.channel_roi "
            "where period = 'all_time'"
        )
    }
    credit = warehouse.query(
        "select channel, model, sum(weight), sum(attributed_revenue) from marts.fct_attribution group by 1, 2"
    )
    assert credit
    for channel, model, conversions, revenue in credit:
        assert all_time[(channel, model)][:2] == pytest.approx((conversions, revenue)), (channel, model)
    # o0 (20.00, May, no touch) and o3 (70.00) are unattributed; all four orders per model
    assert all_time[("unattributed", "linear")][:2] == pytest.approx((2.0, 90.0))
    totals = warehouse.query(
        "select model, sum(conversions), sum(attributed_revenue) from marts.channel_roi "
        "where period = 'all_time' group by model"
    )
    assert len(totals) == 6 and all(
        c == pytest.approx(4.0) and r == pytest.approx(240.0) for _, c, r in totals
    )
    # ad spend over the 61 days of all_time, at each day's price
    seed = _seed_costs()
    days = [dt.date(2025, 5, 1) + dt.timedelta(days=i) for i in range(61)]
    assert all_time[("paid_search", "linear")][2] == pytest.approx(
        sum(_price(seed, "paid_search", "per_day", d) for d in days)
    )


def test_removal_effects_placeholder_matches_what_the_asset_writes(warehouse: Warehouse) -> None:
    from models_ml.attribution import REMOVAL_EFFECT_COLUMNS

    columns = [
        r[0]
        for r in warehouse.query(
            "select column_name from information_schema.columns where table_schema = 'ml' "
            "and table_name = 'channel_removal_effects' order by ordinal_position"
        )
    ]
    assert columns == list(REMOVAL_EFFECT_COLUMNS)


def test_paths_by_hand(warehouse: Warehouse) -> None:
    """fct_attribution_paths: o1's and o2's converting paths, c4's non-converting one; o0 and o3
    had no touch; the bot-opened m3 and the direct session s3 are no touches at all."""
    rows = warehouse.query(
        "select path_id, is_converting, touchpoint_id, touch_position, path_length "
        "from marts.fct_attribution_paths order by path_id, touch_position"
    )
    assert rows == [
        ("customer:c4", False, "session:s4", 1, 1),
        ("order:o1", True, "session:s1", 1, 3),
        ("order:o1", True, "session:s2", 2, 3),
        ("order:o1", True, f"message:{M1}", 3, 3),
        ("order:o2", True, f"message:{M2}", 1, 1),
    ]


def test_a_lookback_override_changes_the_paths_of_both_the_credit_and_the_markov_chain(
    short_lookback: Warehouse,
) -> None:
    """With a 10-day lookback s1 (18 days before o1) leaves o1's path, for fct_attribution and for
    the Markov asset alike. Paths [paid_social, email] and [email] convert, [social] does not:
    start -> paid_social, email, social 1/3 each; P(conversion) = 2/3; without paid_social 1/3
    (effect 1/2), without email 0 (effect 1), without social 2/3 (effect 0): shares 1/3, 2/3, 0.
    (With the project's 30 days paid_search is on o1's path and gets a quarter: test_removal_effects_by_hand.)"""
    effects = {
        r[0]: r[1:]
        for r in short_lookback.query(
            "select channel, removal_effect, removal_share, paths, converting_paths from ml.channel_removal_effects"
        )
    }
    expected = {
        "paid_social": (0.5, 1 / 3, 1, 1),
        "email": (1.0, 2 / 3, 2, 2),
        "social": (0.0, 0.0, 1, 0),
    }
    assert set(effects) == set(expected)
    for channel, (effect, share, paths, converting) in expected.items():
        assert effects[channel][:2] == pytest.approx((effect, share), abs=1e-12), channel
        assert effects[channel][2:] == (paths, converting), channel
    credit = {
        (r[0], r[1]): r[2:]
        for r in short_lookback.query(
            "select touchpoint_id, model, touch_position, path_length, weight from marts.fct_attribution "
            "where order_id = 'o1'"
        )
    }
    assert {t for t, _ in credit} == {"session:s2", f"message:{M1}"}
    assert credit[("session:s2", "first_touch")] == (1, 2, 1.0)
    assert credit[("session:s2", "data_driven")][2] == pytest.approx(1 / 3, abs=1e-9)
    assert credit[(f"message:{M1}", "data_driven")][2] == pytest.approx(2 / 3, abs=1e-9)


def test_the_attribution_models_table_lists_the_models_credited(warehouse: Warehouse) -> None:
    """marts.attribution_models publishes the macro's one list: the models fct_attribution and
    channel_roi credit by, each with a label, in display order 1..n."""
    models = warehouse.query("select model, label, display_order from marts.attribution_models order by 3")
    assert [order for *_, order in models] == list(range(1, len(models) + 1))
    assert all(label and label != model for model, label, _ in models)
    listed = {model for model, _, _ in models}
    assert listed == {m for (m,) in warehouse.query("select distinct model from marts.fct_attribution")}
    assert listed == {m for (m,) in warehouse.query("select distinct model from marts.channel_roi")}
