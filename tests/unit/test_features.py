"""Point-in-time features: values by hand, and no feature reads data after its cutoff."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest

from models_ml.features import FEATURES, FeatureSources, build_features, build_labels, usable_features

SOURCES = FeatureSources(orders="orders", items="items", events="events", customers="customers")
CUTOFF = dt.date(2025, 6, 30)


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("create table customers (customer_id varchar, signed_up_at timestamp)")
    con.execute(
        "create table orders (customer_id varchar, ordered_at timestamp, amount double, is_purchase boolean, "
        "used_coupon boolean)"
    )
    con.execute(
        "create table items (customer_id varchar, ordered_at timestamp, is_purchase boolean, category varchar)"
    )
    con.execute(
        "create table events (customer_id varchar, event_type varchar, occurred_at timestamp, session_id varchar)"
    )
    con.execute(
        """insert into customers values ('a', '2025-01-01'), ('b', '2025-06-01'), ('later', '2025-07-15'),
           ('guest', null)"""
    )
    con.execute(
        """insert into orders values
           ('a', '2025-02-01 10:00', 100, true, false),
           ('a', '2025-04-01 10:00', 50, true, true),
           ('a', '2025-06-20 10:00', 30, true, false),
           ('a', '2025-06-25 10:00', 999, false, false),   -- cancelled: not a purchase
           ('guest', '2025-06-30 23:59', 20, true, false), -- last minute of the cutoff day: included
           ('a', '2025-07-10 10:00', 70, true, false)      -- after the cutoff: label only"""
    )
    con.execute(
        """insert into items values ('a', '2025-02-01 10:00', true, 'shoes'), ('a', '2025-04-01 10:00', true, 'bags'),
           ('a', '2025-06-20 10:00', true, 'shoes')"""
    )
    con.execute(
        """insert into events values ('a', 'add_to_cart', '2025-06-25 09:00', 's1'),
           ('a', 'product_view', '2025-06-25 08:00', 's1'), ('a', 'page_view', '2025-06-10 08:00', 's2'),
           ('b', 'app_open', '2025-05-20 08:00', 's3')"""
    )
    return con


def test_features_by_hand(con) -> None:
    f = build_features(con, CUTOFF, SOURCES)
    assert list(f.columns) == list(FEATURES)
    assert set(f.index) == {"a", "b", "guest"}  # 'later' signed up after the cutoff
    a = f.loc["a"]
    # cutoff_end = 2025-07-01 00:00; day differences count from there
    assert a["tenure_days"] == 181  # 2025-01-01 -> 2025-07-01
    assert a["days_since_first_purchase"] == 150  # 2025-02-01 10:00 -> 2025-07-01
    assert a["days_since_last_purchase"] == 11  # 2025-06-20 -> 2025-07-01
    # 90 days before 2025-07-01 is 2025-04-02, so the 2025-04-01 order is in the 90 days before that
    assert (a["orders_30d"], a["orders_90d"], a["orders_365d"], a["orders_total"]) == (1, 1, 3, 3)
    assert (a["revenue_30d"], a["revenue_90d"], a["revenue_total"]) == (30, 30, 180)
    assert a["average_order_value"] == pytest.approx(60)
    assert a["mean_gap_days"] == pytest.approx((59 + 80) / 2)  # Feb 1 -> Apr 1 -> Jun 20
    assert a["gap_ratio"] == pytest.approx(11 / 69.5)
    assert a["order_trend_90d"] == 1 - 2  # Jun 20 vs Feb 1 and Apr 1 (window 2025-01-02 .. 2025-04-02)
    assert a["category_breadth"] == 2
    assert a["coupon_share"] == pytest.approx(1 / 3)
    assert (a["visits_30d"], a["product_views_30d"], a["cart_adds_30d"]) == (2, 1, 1)
    assert a["days_since_last_event"] == 6  # 2025-06-25 09:00 -> 2025-07-01 (day boundaries, like above)
    b = f.loc["b"]
    assert np.isnan(b["days_since_last_purchase"]) and b["orders_total"] == 0 and b["app_opens_30d"] == 0
    assert f.loc["guest", "tenure_days"] == 1 and f.loc["guest", "orders_30d"] == 1  # known since 23:59


def test_undated_customers_are_scored_but_not_trained_on(con) -> None:
    con.execute("insert into customers values ('undated', null)")
    assert "undated" not in build_features(con, CUTOFF, SOURCES).index
    scored = build_features(con, CUTOFF, SOURCES, include_undated=True)
    assert "undated" in scored.index and np.isnan(scored.loc["undated", "tenure_days"])


def test_labels_only_use_the_window_after_the_cutoff(con) -> None:
    labels = build_labels(con, CUTOFF, 30, SOURCES)
    assert labels.to_dict("index") == {"a": {"future_purchases": 1.0, "future_revenue": 70.0}}
    assert build_labels(con, CUTOFF, 5, SOURCES).empty  # 2025-07-10 is outside 5 days


def test_no_feature_reads_data_after_its_cutoff(con) -> None:
    before = build_features(con, CUTOFF, SOURCES)
    after_cutoff = "2025-07-01 00:00:00"  # first instant after the cutoff day
    con.execute(
        f"insert into orders values ('a', '{after_cutoff}', 500, true, true), ('b', '2025-08-01', 5, true, true)"
    )
    con.execute(
        f"insert into items values ('a', '{after_cutoff}', true, 'hats'), ('b', '2025-08-01', true, 'toys')"
    )
    con.execute(
        f"insert into events values ('a', 'add_to_cart', '{after_cutoff}', 's9'), "
        "('b', 'checkout_started', '2025-07-02', 's8'), ('guest', 'app_open', '2026-01-01', 's7')"
    )
    con.execute("insert into customers values ('new', '2025-07-02')")
    pd.testing.assert_frame_equal(before, build_features(con, CUTOFF, SOURCES))

    # and the test can fail: a row just before the end of the cutoff day does change the features
    con.execute("insert into orders values ('b', '2025-06-30 23:59:59', 5, true, false)")
    changed = build_features(con, CUTOFF, SOURCES)
    assert changed.loc["b", "orders_total"] == 1 and before.loc["b", "orders_total"] == 0


def test_usable_features_leave_out_empty_and_constant_columns() -> None:
    x = pd.DataFrame(
        {
            "recency": [1.0, 5.0, np.nan, 9.0],  # varies, and missing for one: kept
            "events": [np.nan] * 4,  # empty for everyone
            "app_opens": [0.0] * 4,  # constant
            "coupon_share": [0.0, np.nan, 0.0, 0.0],  # one value, but missing tells something: kept
            "visits": [2.5] * 4,
        }
    )
    kept, dropped = usable_features(x)
    assert kept == ["recency", "coupon_share"]
    assert dropped == {
        "events": "empty for every customer",
        "app_opens": "0 for every customer",
        "visits": "2.5 for every customer",
    }


def test_orders_only_features_by_hand(con) -> None:
    """No events and no order items (an orders-only landing zone): the event and category features are
    0 or empty for everyone, which usable_features then leaves out."""
    con.execute("delete from events")
    con.execute("delete from items")
    f = build_features(con, CUTOFF, SOURCES)
    assert f["days_since_last_event"].isna().all()
    assert (
        (f[["visits_30d", "product_views_30d", "cart_adds_30d", "checkouts_30d", "app_opens_30d"]] == 0)
        .all()
        .all()
    )
    assert (f["category_breadth"] == 0).all()
    kept, dropped = usable_features(f)
    assert set(dropped) == {
        "visits_30d",
        "product_views_30d",
        "cart_adds_30d",
        "checkouts_30d",
        "app_opens_30d",
        "days_since_last_event",
        "category_breadth",
    }
    assert kept == [c for c in FEATURES if c not in dropped]
