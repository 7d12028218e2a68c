"""Every condition kind and operator, compiled and run on a small hand-built warehouse, returns the
members worked out by hand below (DuckDB; the same on a real PostgreSQL; and through dbt).

The fixture holds only the relations the compiler reads, created with plain DDL and inserts (so
the test depends on the columns the catalog names, not on how the marts are built). The
relations are independent inputs: values are chosen for the edge cases, not derived from each
other. As of 2026-03-10, so `now` is 2026-03-11 00:00 and the windows are
  within_days 7  = [2026-03-04 00:00, 2026-03-11 00:00)
  within_days 14 = [2026-02-25 00:00, now), within_days 30 = [2026-02-09 00:00, now),
  within_days 90 = [2025-12-11 00:00, now), within_days 365 = [2025-03-11 00:00, now).
Edge cases: customers without orders (c03, c06, c10, c11, c15, c19, c20), without events (most),
with a null attribute (c06/c20 country, c03 email, c20 signed_up_at), without a score (c09,
c14: its only score is dated after the as-of date), with email consent revoked after it was
granted (c04: email_opt_in false, email_consent_at set), events and orders exactly on a window's
edge (c02's product_view at 2026-02-25 00:00 is in 14 days, c04's order at 2025-12-11 00:00 in 90
days, c04's add_to_cart at 2026-03-04 00:00 in 7 days; c05's signup 2026-02-24 23:59:59 and c08's
add_to_cart 2026-03-03 23:59:59 are just out; c13's event and c17's order at exactly `now` are
out), a cancelled and a refunded order (never a purchase), bot opens and clicks (not engagement).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest
import yaml

from activation.conditions import Catalog, CompileContext, compile_condition, parse_condition
from tests.integration.postgres import postgres_dsn  # noqa: F401

AS_OF = dt.date(2026, 3, 10)
ALL = {f"c{i:02d}" for i in range(1, 21)}
BUYERS = {"c01", "c02", "c04", "c05", "c07", "c08", "c09", "c12", "c13", "c14", "c16", "c17", "c18"}
CATALOG = Catalog.default(audiences=["recent_buyers"])


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


# --- the fixture ----------------------------------------------------------------------------------

TABLES: dict[str, tuple[str, list[tuple]]] = {}

# id, email, country, signed_up_at, order_count, revenue, average_order_value, is_buyer,
# email_opt_in, sms_opt_in, push_opt_in, email_consent_at
TABLES["marts.dim_customers"] = (
    "customer_id varchar, email varchar, country varchar, signed_up_at timestamp, order_count integer, "
    "revenue double precision, average_order_value double precision, is_buyer boolean, "
    "email_opt_in boolean, sms_opt_in boolean, push_opt_in boolean, email_consent_at timestamp",
    [
        ("c01", "a@example.com", "DE", ts("2026-03-01 10:00"), 3, 900.0, 300.0, True, True, False, False, ts("2025-01-01 00:00")),
        ("c02", "b@example.com", "AT", ts("2026-02-25 00:00"), 1, 50.0, 50.0, True, True, True, False, ts("2026-02-25 00:00")),
        ("c03", None, "CH", ts("2025-06-01 00:00"), 0, 0.0, None, False, False, False, False, None),
        ("c04", "d@example.com", "FR", ts("2025-01-10 00:00"), 5, 2000.0, 400.0, True, False, True, True, ts("2026-03-01 00:00")),
        ("c05", "e@example.com", "DE", ts("2026-02-24 23:59:59"), 2, 300.0, 150.0, True, True, False, False, ts("2026-02-24 23:59:59")),
        ("c06", "f@example.com", None, ts("2024-12-01 00:00"), 0, 0.0, None, False, True, False, False, ts("2024-12-01 00:00")),
        ("c07", "g@example.com", "US", ts("2025-11-11 00:00"), 1, 120.0, 120.0, True, False, False, True, None),
        ("c08", "h@example.com", "DE", ts("2025-03-01 00:00"), 4, 640.0, 160.0, True, True, False, False, ts("2025-03-01 00:00")),
        ("c09", "i@example.com", "AT", ts("2025-09-09 00:00"), 2, 80.0, 40.0, True, False, False, False, None),
        ("c10", "j@example.com", "CH", ts("2025-10-10 00:00"), 0, 0.0, None, False, True, True, True, ts("2025-10-10 00:00")),
        ("c11", "k@example.com", "DE", ts("2026-03-10 23:00"), 0, 0.0, None, False, False, False, False, None),
        ("c12", "l@example.com", "IT", ts("2025-05-05 00:00"), 1, 30.0, 30.0, True, True, False, False, ts("2025-05-05 00:00")),
        ("c13", "m@example.com", "DE", ts("2025-02-02 00:00"), 6, 1500.0, 250.0, True, True, True, False, ts("2025-02-02 00:00")),
        ("c14", "n@example.com", "AT", ts("2024-01-01 00:00"), 1, 700.0, 700.0, True, False, False, False, None),
        ("c15", "o@example.com", "US", ts("2025-07-07 00:00"), 0, 0.0, None, False, False, False, False, None),
        ("c16", "p@example.com", "DE", ts("2025-08-08 00:00"), 2, 200.0, 100.0, True, True, False, False, ts("2025-08-08 00:00")),
        ("c17", "q@example.com", "CH", ts("2025-04-04 00:00"), 3, 450.0, 150.0, True, False, False, False, None),
        ("c18", "r@example.com", "FR", ts("2025-12-12 00:00"), 1, 60.0, 60.0, True, True, False, False, ts("2025-12-12 00:00")),
        ("c19", "s@example.com", "DE", ts("2026-01-20 00:00"), 0, 0.0, None, False, False, False, False, None),
        ("c20", "t@example.com", None, None, 0, 0.0, None, False, False, False, False, None),
    ],
)  # fmt: skip

TABLES["marts.customer_lifecycle"] = (
    "customer_id varchar, lifecycle_stage varchar, days_in_stage integer",
    [
        ("c01", "active", 10), ("c02", "new", 13), ("c03", "prospect", None), ("c04", "at_risk", 30),
        ("c05", "active", 45), ("c06", "prospect", 400), ("c07", "at_risk", 29), ("c08", "churned", 200),
        ("c09", "churned", 31), ("c10", "prospect", 150), ("c11", "prospect", 0), ("c12", "churned", 90),
        ("c13", "active", 300), ("c14", "churned", 800), ("c15", "prospect", 240), ("c16", "at_risk", 60),
        ("c17", "reactivated", 5), ("c18", "new", 88), ("c19", "prospect", 49), ("c20", "prospect", None),
    ],
)  # fmt: skip

TABLES["marts.customer_rfm"] = (
    "customer_id varchar, r_score integer, monetary double precision, rfm_segment varchar",
    [
        ("c01", 5, 900.0, "Champions"), ("c02", 5, 50.0, "New"), ("c04", 2, 2000.0, "Can't Lose"),
        ("c05", 4, 300.0, "Loyal"), ("c07", 3, 120.0, "Need Attention"), ("c08", 1, 640.0, "Hibernating"),
        ("c09", 1, 80.0, "Lost"), ("c12", 2, 30.0, "Lost"), ("c13", 5, 1500.0, "Champions"),
        ("c14", 1, 700.0, "At Risk"), ("c16", 3, 200.0, "About to Sleep"), ("c17", 4, 450.0, "Loyal"),
        ("c18", 4, 60.0, "Promising"),
    ],
)  # fmt: skip

TABLES["marts.customer_tags"] = (
    "customer_id varchar, tag varchar",
    [
        ("c01", "vip"), ("c13", "vip"), ("c04", "vip"), ("c04", "high_value_at_risk"), ("c07", "at_risk"),
        ("c16", "at_risk"), ("c08", "dormant"), ("c09", "dormant"), ("c11", "new_signup"),
        ("c02", "new_signup"), ("c02", "one_time_buyer"), ("c05", "cart_abandoner"),
    ],
)  # fmt: skip

TABLES["ml.customer_scores"] = (
    "customer_id varchar, churn_probability double precision, predicted_clv double precision, "
    "scored_at timestamp, as_of_date date",
    [
        ("c01", 0.10, 500.0, ts("2026-03-10 06:00"), dt.date(2026, 3, 10)),
        ("c02", 0.55, 40.0, ts("2026-03-10 06:00"), dt.date(2026, 3, 10)),
        ("c04", 0.80, 900.0, ts("2026-03-10 06:00"), dt.date(2026, 3, 10)),
        ("c04", 0.20, 1000.0, ts("2026-03-01 06:00"), dt.date(2026, 3, 1)),  # older: the latest wins
        ("c05", 0.60, 200.0, ts("2026-03-10 06:00"), dt.date(2026, 3, 10)),
        ("c07", 0.70, None, ts("2026-03-10 06:00"), dt.date(2026, 3, 10)),  # no CLV model
        ("c08", 0.95, 100.0, ts("2026-03-10 06:00"), dt.date(2026, 3, 10)),
        ("c13", 0.30, 1200.0, ts("2026-03-10 06:00"), dt.date(2026, 3, 10)),
        ("c14", 0.65, 300.0, ts("2026-03-11 06:00"), dt.date(2026, 3, 11)),  # after the as-of date: unseen
        ("c16", 0.40, 150.0, ts("2026-03-09 06:00"), dt.date(2026, 3, 9)),  # the latest on or before it
    ],
)

TABLES["marts.recent_buyers"] = ("customer_id varchar", [("c01",), ("c02",), ("c17",)])

TABLES["intermediate.int_orders_resolved"] = (
    "order_id varchar, customer_id varchar, ordered_at timestamp, amount double precision, status varchar, "
    "is_purchase boolean, coupon_code varchar, channel varchar",
    [
        ("o01", "c01", ts("2026-03-05 10:00"), 300.0, "completed", True, None, "web"),
        ("o02", "c01", ts("2026-02-01 10:00"), 300.0, "completed", True, "SAVE10", "web"),
        ("o03", "c01", ts("2025-10-01 10:00"), 300.0, "completed", True, None, "app"),
        ("o04", "c02", ts("2026-03-01 12:00"), 50.0, "completed", True, None, "web"),
        ("o05", "c04", ts("2025-12-11 00:00"), 400.0, "completed", True, None, "web"),
        ("o06", "c04", ts("2025-12-10 23:59:59"), 400.0, "completed", True, None, "web"),
        ("o07", "c04", ts("2025-06-01 12:00"), 400.0, "completed", True, "SAVE10", "app"),
        ("o08", "c04", ts("2026-03-02 12:00"), 90.0, "cancelled", False, None, "web"),
        ("o09", "c05", ts("2026-03-08 09:00"), 150.0, "completed", True, "SAVE10", "app"),
        ("o10", "c05", ts("2026-01-15 12:00"), 150.0, "completed", True, None, "web"),
        ("o11", "c07", ts("2025-11-20 12:00"), 120.0, "completed", True, None, "web"),
        ("o12", "c08", ts("2025-08-01 12:00"), 640.0, "completed", True, None, "web"),
        ("o13", "c09", ts("2025-05-01 12:00"), 80.0, "refunded", False, None, "web"),
        ("o14", "c12", ts("2025-04-01 12:00"), 30.0, "completed", True, None, "web"),
        ("o15", "c13", ts("2026-02-20 12:00"), 700.0, "completed", True, None, "app"),
        ("o16", "c13", ts("2026-01-10 12:00"), 800.0, "completed", True, "VIP", "web"),
        ("o17", "c14", ts("2024-02-01 12:00"), 700.0, "completed", True, None, "web"),
        ("o18", "c16", ts("2026-03-06 14:00"), 200.0, "completed", True, None, "web"),
        ("o19", "c17", ts("2026-03-11 00:00"), 450.0, "completed", True, None, "web"),  # at now: out
        ("o20", "c18", ts("2026-03-10 23:59:59"), 60.0, "completed", True, None, "app"),
    ],
)

TABLES["staging.stg_commerce__products"] = (
    "product_id varchar, category varchar",
    [("p1", "shoes"), ("p2", "shirts"), ("p3", "shoes"), ("p4", "bags")],
)

TABLES["intermediate.int_events_stitched"] = (
    "event_id varchar, customer_id varchar, event_type varchar, occurred_at timestamp, product_id varchar, "
    "url varchar, utm_source varchar",
    [
        ("e01", "c01", "product_view", ts("2026-03-09 10:00"), "p1", "/p/1", None),
        ("e02", "c01", "product_view", ts("2026-03-08 10:00"), "p2", "/p/2", None),
        ("e03", "c01", "product_view", ts("2026-03-02 10:00"), "p1", "/p/1", None),
        ("e04", "c02", "product_view", ts("2026-02-25 00:00"), "p1", "/p/1", None),
        ("e05", "c02", "product_view", ts("2026-03-05 10:00"), "p2", "/p/2", None),
        ("e06", "c02", "product_view", ts("2026-02-24 23:59:59"), "p1", "/p/1", None),
        ("e07", "c04", "add_to_cart", ts("2026-03-04 00:00"), "p1", "/cart", None),
        ("e08", "c05", "add_to_cart", ts("2026-03-07 10:00"), "p2", "/cart", None),
        ("e09", "c05", "checkout_started", ts("2026-03-08 09:00"), "p2", "/checkout", None),
        ("e10", "c07", "checkout_started", ts("2026-03-10 10:00"), "p4", "/checkout", None),
        ("e11", "c08", "add_to_cart", ts("2026-03-03 23:59:59"), "p1", "/cart", None),
        ("e12", "c10", "page_view", ts("2026-03-01 10:00"), None, "/sale", "newsletter"),
        ("e13", "c10", "product_view", ts("2026-03-09 10:00"), "p3", "/p/3", None),
        ("e14", "c11", "signup", ts("2026-03-10 23:00"), None, "/signup", None),
        ("e15", "c16", "add_to_cart", ts("2026-03-05 10:00"), "p1", "/cart", None),
        ("e16", "c18", "add_to_cart", ts("2026-03-10 08:00"), "p9", "/cart", None),  # unknown product
        ("e17", "c06", "product_view", ts("2026-03-10 12:00"), None, "/p/x", None),
        ("e18", "c13", "product_view", ts("2026-03-11 00:00"), "p1", "/p/1", None),  # at now: out
        ("e19", None, "product_view", ts("2026-03-09 10:00"), "p1", "/p/1", None),  # anonymous
        ("e20", "c12", "page_view", ts("2026-03-01 10:00"), None, "/sale", "ads"),
    ],
)

TABLES["marts.fct_messages"] = (
    "customer_id varchar, campaign varchar, channel varchar, is_sent boolean, sent_at timestamp",
    [
        ("c08", "win_back", "email", True, ts("2026-03-01 09:00")),
        ("c09", "win_back", "email", True, ts("2026-03-01 09:00")),
        ("c12", "win_back", "email", False, None),  # skipped: never sent
        ("c14", "win_back", "sms", True, ts("2026-03-01 09:00")),
        ("c04", "win_back", "email", True, ts("2025-12-01 09:00")),
        ("c01", "spring", "email", True, ts("2026-03-05 09:00")),
    ],
)

TABLES["marts.fct_message_events"] = (
    "customer_id varchar, campaign varchar, channel varchar, event_type varchar, is_human boolean, "
    "occurred_at timestamp",
    [
        ("c08", "win_back", "email", "clicked", True, ts("2026-03-02 10:00")),
        ("c09", "win_back", "email", "opened", False, ts("2026-03-01 09:00")),  # image proxy
        ("c09", "win_back", "email", "clicked", False, ts("2026-03-01 09:00")),  # link scanner
        ("c14", "win_back", "sms", "clicked", True, ts("2026-03-02 10:00")),
        ("c04", "win_back", "email", "opened", True, ts("2025-12-02 10:00")),
        ("c01", "spring", "email", "opened", True, ts("2026-03-06 10:00")),
        ("c08", "win_back", "email", "unsubscribed", True, ts("2026-03-03 10:00")),
    ],
)


def build(execute: Callable[[str], None], insert: Callable[[str, list[tuple]], None], mark: str) -> None:
    """Create the schemas and tables and insert the rows (`mark` is the driver's placeholder)."""
    for schema in ("marts", "ml", "intermediate", "staging"):
        execute(f"create schema if not exists {schema}")
    for table, (columns, rows) in TABLES.items():
        execute(f"create table {table} ({columns})")
        width = len(rows[0])
        insert(f"insert into {table} values ({', '.join([mark] * width)})", rows)


# --- the cases: condition (YAML) -> members, worked out by hand from the rows above ---------------

CASES: list[tuple[str, str, set[str]]] = [
    # tag
    ("tag", "tag: vip", {"c01", "c04", "c13"}),
    ("tag_in", "tag: {in: [at_risk, dormant]}", {"c07", "c08", "c09", "c16"}),
    # lifecycle_stage, days_in_stage
    ("stage_eq", "lifecycle_stage: at_risk", {"c04", "c07", "c16"}),
    ("stage_in", "lifecycle_stage: {in: [at_risk, churned]}", {"c04", "c07", "c16", "c08", "c09", "c12", "c14"}),
    ("stage_ne", "lifecycle_stage: {ne: prospect}", BUYERS),
    ("stage_not_in", "lifecycle_stage: {not_in: [prospect, churned]}",
     {"c01", "c02", "c04", "c05", "c07", "c13", "c16", "c17", "c18"}),
    ("days_gte", "days_in_stage: {gte: 30}",
     {"c04", "c05", "c06", "c08", "c09", "c10", "c12", "c13", "c14", "c15", "c16", "c18", "c19"}),
    ("days_between", "days_in_stage: {between: [29, 31]}", {"c04", "c07", "c09"}),
    ("days_is_null", "days_in_stage: {is_null: true}", {"c03", "c20"}),
    # rfm_segment, rfm
    ("segment_eq", "rfm_segment: Champions", {"c01", "c13"}),
    ("segment_quote", "rfm_segment: \"Can't Lose\"", {"c04"}),
    ("segment_in", "rfm_segment: {in: [Loyal, \"Can't Lose\"]}", {"c04", "c05", "c17"}),
    ("segment_not_in", "rfm_segment: {not_in: [Lost]}", BUYERS - {"c09", "c12"}),
    ("not_segment", "not: {rfm_segment: Lost}", ALL - {"c09", "c12"}),
    ("rfm_gte", "rfm: {name: r_score, gte: 4}", {"c01", "c02", "c05", "c13", "c17", "c18"}),
    ("rfm_lt", "rfm: {name: r_score, lt: 2}", {"c08", "c09", "c14"}),
    ("rfm_top_share", "rfm: {name: monetary, top_share: 0.25}", {"c04", "c13", "c01"}),
    # attribute: text
    ("attr_eq", "attribute: {name: country, eq: DE}", {"c01", "c05", "c08", "c11", "c13", "c16", "c19"}),
    ("attr_ne", "attribute: {name: country, ne: DE}",
     {"c02", "c03", "c04", "c07", "c09", "c10", "c12", "c14", "c15", "c17", "c18"}),
    ("attr_in", "attribute: {name: country, in: [AT, CH]}", {"c02", "c03", "c09", "c10", "c14", "c17"}),
    ("attr_not_in", "attribute: {name: country, not_in: [DE, AT, CH]}", {"c04", "c07", "c12", "c15", "c18"}),
    ("attr_is_null", "attribute: {name: country, is_null: true}", {"c06", "c20"}),
    ("personal_is_null", "attribute: {name: email, is_null: true}", {"c03"}),
    ("personal_not_null", "attribute: {name: email, is_null: false}", ALL - {"c03"}),
    # attribute: numbers
    ("num_gt", "attribute: {name: revenue, gt: 640}", {"c04", "c13", "c01", "c14"}),
    ("num_gte", "attribute: {name: revenue, gte: 640}", {"c04", "c13", "c01", "c14", "c08"}),
    ("num_lt", "attribute: {name: revenue, lt: 50}", {"c12", "c03", "c06", "c10", "c11", "c15", "c19", "c20"}),
    ("num_lte", "attribute: {name: revenue, lte: 50}",
     {"c12", "c02", "c03", "c06", "c10", "c11", "c15", "c19", "c20"}),
    ("num_between", "attribute: {name: order_count, between: [1, 2]}",
     {"c02", "c05", "c07", "c09", "c12", "c14", "c16", "c18"}),
    ("num_eq", "attribute: {name: revenue, eq: 0}", ALL - BUYERS),
    ("num_in", "attribute: {name: revenue, in: [50, 60]}", {"c02", "c18"}),
    ("num_not_in", "attribute: {name: revenue, not_in: [0]}", BUYERS),
    ("num_ne", "attribute: {name: order_count, ne: 0}", BUYERS),
    ("top_share", "attribute: {name: revenue, top_share: 0.15}", {"c04", "c13", "c01"}),
    ("bottom_share", "attribute: {name: average_order_value, bottom_share: 0.2}", {"c12", "c09", "c02"}),
    # attribute: boolean
    ("bool_eq", "attribute: {name: is_buyer, eq: true}", BUYERS),
    ("bool_ne", "attribute: {name: is_buyer, ne: true}", ALL - BUYERS),
    # attribute: timestamps
    ("ts_within", "attribute: {name: signed_up_at, within_days: 14}", {"c01", "c02", "c11"}),
    ("ts_before", "attribute: {name: signed_up_at, before_days: 365}", {"c04", "c06", "c08", "c13", "c14"}),
    ("ts_gte", "attribute: {name: signed_up_at, gte: 2026-01-20}", {"c01", "c02", "c05", "c11", "c19"}),
    ("ts_gt", "attribute: {name: signed_up_at, gt: 2026-01-20}", {"c01", "c02", "c05", "c11"}),
    ("ts_lte", "attribute: {name: signed_up_at, lte: 2025-02-02}", {"c04", "c06", "c13", "c14"}),
    ("ts_lte_edge", "attribute: {name: signed_up_at, lte: 2026-01-19}",  # c19 at 2026-01-20 00:00: out
     ALL - {"c01", "c02", "c05", "c11", "c19", "c20"}),
    ("ts_between_edge", "attribute: {name: signed_up_at, between: [2025-12-12, 2026-01-19]}", {"c18"}),
    ("ts_lt", "attribute: {name: signed_up_at, lt: '2025-02-02'}", {"c04", "c06", "c14"}),
    ("ts_between", "attribute: {name: signed_up_at, between: [2025-07-07, 2025-09-09]}", {"c15", "c16", "c09"}),
    ("ts_gte_instant", "attribute: {name: signed_up_at, gte: '2026-03-10 22:00:00'}", {"c11"}),
    ("ts_is_null", "attribute: {name: signed_up_at, is_null: true}", {"c20"}),
    # score (no score = no match)
    ("score_gte", "score: {name: churn_probability, gte: 0.6}", {"c04", "c05", "c07", "c08"}),
    ("score_lt", "score: {name: churn_probability, lt: 0.5}", {"c01", "c13", "c16"}),
    ("not_score", "not: {score: {name: churn_probability, gte: 0.6}}", ALL - {"c04", "c05", "c07", "c08"}),
    ("score_top_share", "score: {name: predicted_clv, top_share: 0.3}", {"c13", "c04"}),
    ("score_is_null", "score: {name: predicted_clv, is_null: true}", {"c07"}),
    ("score_between", "score: {name: churn_probability, between: [0.55, 0.7]}", {"c02", "c05", "c07"}),
    # consent
    ("consent_email", "consent: email", {"c01", "c02", "c05", "c06", "c08", "c10", "c12", "c13", "c16", "c18"}),
    ("consent_sms", "consent: sms", {"c02", "c04", "c10", "c13"}),
    ("consent_push", "consent: {channel: push}", {"c04", "c07", "c10"}),
    # audience
    ("audience", "audience: recent_buyers", {"c01", "c02", "c17"}),
    ("not_audience", "not: {audience: recent_buyers}", ALL - {"c01", "c02", "c17"}),
    # event
    ("event_count_gte", "event: {type: product_view, within_days: 14, count: {gte: 3}}", {"c01"}),
    ("event_exists", "event: {type: product_view, within_days: 14}", {"c01", "c02", "c06", "c10"}),
    ("event_count_eq", "event: {type: product_view, within_days: 14, count: {eq: 2}}", {"c02"}),
    ("event_count_zero", "event: {type: product_view, within_days: 14, count: {eq: 0}}",
     ALL - {"c01", "c02", "c06", "c10"}),
    ("event_not_followed", "event: {type: [add_to_cart, checkout_started], within_days: 7, not_followed_by: order}",
     {"c04", "c07"}),
    ("event_category", "event: {type: add_to_cart, within_days: 7, where: {attribute: {name: category, eq: shoes}}}",
     {"c04", "c16"}),
    ("event_not_category", "event: {type: add_to_cart, where: {not: {attribute: {name: category, eq: shoes}}}}",
     {"c05", "c18"}),
    ("event_where_all",
     "event: {type: page_view, where: {all: [{attribute: {name: url, eq: /sale}}, "
     "{attribute: {name: utm_source, eq: newsletter}}]}}", {"c10"}),
    ("event_no_product", "event: {type: product_view, where: {attribute: {name: category, is_null: true}}}", {"c06"}),
    ("event_before", "event: {type: product_view, before_days: 7}", {"c01", "c02"}),
    ("event_between", "event: {type: signup, between: [2026-03-10, 2026-03-10]}", {"c11"}),
    ("event_types", "event: {type: [page_view, signup]}", {"c10", "c11", "c12"}),
    ("event_where_type", "event: {type: [page_view, signup], where: {attribute: {name: type, eq: signup}}}", {"c11"}),
    # order
    ("order_none", "order: {within_days: 90, count: {eq: 0}}",
     ALL - {"c01", "c02", "c04", "c05", "c13", "c16", "c18"}),
    ("order_any", "order: {within_days: 90}", {"c01", "c02", "c04", "c05", "c13", "c16", "c18"}),
    ("order_sum", "order: {within_days: 365, sum: {gte: 500}}", {"c01", "c04", "c08", "c13"}),
    ("order_count", "order: {count: {gte: 2}}", {"c01", "c04", "c05", "c13"}),
    ("order_status", "order: {where: {attribute: {name: status, eq: cancelled}}}", {"c04"}),
    ("order_status_in", "order: {where: {attribute: {name: status, in: [cancelled, refunded]}}}", {"c04", "c09"}),
    ("order_coupon", "order: {where: {attribute: {name: coupon_code, is_null: false}}}", {"c01", "c04", "c05", "c13"}),
    ("order_channel", "order: {within_days: 30, where: {attribute: {name: channel, eq: app}}}", {"c05", "c13", "c18"}),
    ("order_amount", "order: {where: {attribute: {name: amount, gt: 400}}}", {"c08", "c13", "c14"}),
    ("order_between", "order: {between: [2026-03-01, 2026-03-06]}", {"c01", "c02", "c16"}),
    ("order_before", "order: {before_days: 365}", {"c14"}),
    ("order_sum_between", "order: {sum: {between: [100, 300]}}", {"c05", "c07", "c16"}),
    ("order_where_any",
     "order: {where: {any: [{attribute: {name: coupon_code, eq: VIP}}, {attribute: {name: amount, lt: 50}}]}}",
     {"c12", "c13"}),
    ("order_where_not", "order: {within_days: 30, where: {not: {attribute: {name: coupon_code, eq: SAVE10}}}}",
     {"c01", "c02", "c13", "c16", "c18"}),
    ("order_count_and_sum", "order: {count: {eq: 1}, sum: {gte: 100}}", {"c07", "c08", "c14", "c16"}),
    # message
    ("msg_sent", "message: {campaign: win_back, sent: true}", {"c04", "c08", "c09", "c14"}),
    ("msg_clicked", "message: {campaign: win_back, clicked: true}", {"c08", "c14"}),
    ("msg_opened", "message: {campaign: win_back, opened: true}", {"c04", "c08", "c14"}),
    ("msg_not_clicked", "message: {campaign: win_back, clicked: false}", ALL - {"c08", "c14"}),
    ("msg_channel", "message: {campaign: win_back, channel: email, clicked: true}", {"c08"}),
    ("msg_unsubscribed", "message: {unsubscribed: true}", {"c08"}),
    ("msg_window", "message: {campaign: win_back, sent: true, within_days: 30}", {"c08", "c09", "c14"}),
    ("msg_any_campaign", "message: {opened: true}", {"c01", "c04", "c08", "c14"}),
    # all / any / not, nested
    ("nested_1",
     "all: [{consent: email}, {any: [{tag: vip}, {lifecycle_stage: at_risk}]}, {not: {audience: recent_buyers}}]",
     {"c13", "c16"}),
    ("nested_2",
     "any: [{all: [{attribute: {name: country, eq: DE}}, {order: {within_days: 30, count: {eq: 0}}}]},"
     " {not: {any: [{consent: email}, {consent: sms}, {consent: push}]}}]",
     {"c03", "c08", "c09", "c11", "c14", "c15", "c17", "c19", "c20"}),
    ("double_not", "not: {not: {tag: vip}}", {"c01", "c04", "c13"}),
]  # fmt: skip

# Order 19 (c17, at exactly `now`) must not count: c17 has no completed order before now.
assert "c17" not in {m for name, _, ms in CASES if name == "order_count" for m in ms}


def compiled(text: str, target: str, **context: object) -> tuple[str, list]:
    cond = parse_condition(yaml.safe_load(text), source="test.yml", path="where")
    ctx = CompileContext(target=target, **({} if target == "dbt" else {"as_of": AS_OF}) | context)
    return compile_condition(cond, CATALOG, ctx)


def members_query(sql: str) -> str:
    return f"select c.customer_id from marts.dim_customers as c where {sql} order by 1"


# --- DuckDB -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def duck(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[duckdb.DuckDBPyConnection, Path]]:
    path = tmp_path_factory.mktemp("conditions") / "fixture.duckdb"
    con = duckdb.connect(str(path))
    con.execute("set TimeZone = 'UTC'")
    build(con.execute, con.executemany, "?")
    yield con, path
    con.close()


@pytest.mark.parametrize(("name", "text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_members_on_duckdb(duck: tuple, name: str, text: str, expected: set[str]) -> None:
    con, _ = duck
    sql, params = compiled(text, "duckdb")
    assert "?" in sql or not params
    got = {row[0] for row in con.execute(members_query(sql), params).fetchall()}
    assert got == expected, f"{name}: extra {sorted(got - expected)}, missing {sorted(expected - got)}"


def test_no_value_reaches_the_sql_text(duck: tuple) -> None:
    """Runtime targets bind every value: a campaign with a quote and SQL in it is only a parameter."""
    con, _ = duck
    text = 'message: {campaign: "x\'); drop table marts.dim_customers; --", sent: true}'
    sql, params = compiled(text, "duckdb")
    assert "drop table" not in sql and params[0] == "x'); drop table marts.dim_customers; --"
    assert con.execute(members_query(sql), params).fetchall() == []
    assert con.execute("select count(*) from marts.dim_customers").fetchone() == (20,)


def test_since_entry_measures_from_the_anchor(duck: tuple) -> None:
    """A journey's entry time: events and orders from the row's own timestamp on, up to now."""
    con, _ = duck
    con.execute("create temp table entries (customer_id varchar, entered_at timestamp)")
    con.executemany(
        "insert into entries values (?, ?)",
        [("c01", ts("2026-03-08 12:00")), ("c02", ts("2026-03-06 00:00")), ("c10", ts("2026-03-01 00:00")),
         ("c05", ts("2026-03-08 09:00")), ("c16", ts("2026-03-07 00:00"))],
    )  # fmt: skip
    for text, expected in [
        ("event: {type: product_view, since: entry}", {"c01", "c10"}),
        ("order: {since: entry, count: {gte: 1}}", {"c05"}),
    ]:
        sql, params = compiled(text, "duckdb", anchor="c.entered_at")
        rows = con.execute(f"select c.customer_id from entries as c where {sql}", params).fetchall()
        assert {r[0] for r in rows} == expected, text
        # a floor at or below the earliest entry (what a tick passes) changes nothing
        floored = compiled(text, "duckdb", anchor="c.entered_at", anchor_floor=ts("2026-03-01 00:00"))
        rows = con.execute(
            f"select c.customer_id from entries as c where {floored[0]}", floored[1]
        ).fetchall()
        assert {r[0] for r in rows} == expected, text
        assert len(floored[1]) == len(params) + 1


def test_now_moves_the_windows(duck: tuple) -> None:
    """A journey tick passes its own time: windows end there (and scores are those of its day)."""
    con, _ = duck
    now = ts("2026-03-06 00:00")
    sql, params = compiled("event: {type: product_view, within_days: 7}", "duckdb", now=now, as_of=None)
    got = {r[0] for r in con.execute(members_query(sql), params).fetchall()}
    assert got == {"c01", "c02"}  # [02-27, 03-06): c01's 03-02 and c02's 03-05; the later views are not yet
    sql, params = compiled("score: {name: churn_probability, gte: 0.3}", "duckdb", now=now, as_of=None)
    got = {r[0] for r in con.execute(members_query(sql), params).fetchall()}
    assert got == set()  # as of 2026-03-05 only c04's 2026-03-01 score (0.20) exists


# --- PostgreSQL -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg(postgres_dsn: str) -> Iterator[object]:  # noqa: F811
    import psycopg

    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute("set TimeZone = 'UTC'")
        for schema in ("marts", "ml", "intermediate", "staging"):
            conn.execute(f"drop schema if exists {schema} cascade")

        def insert(sql: str, rows: list[tuple]) -> None:
            with conn.cursor() as cur:
                cur.executemany(sql, rows)

        build(conn.execute, insert, "%s")
        yield conn


def test_same_members_on_postgres(pg: object) -> None:
    """Every case compiled for postgres gives the hand-worked members on a real server."""
    wrong = []
    for name, text, expected in CASES:
        sql, params = compiled(text, "postgres")
        got = {row[0] for row in pg.execute(members_query(sql), params).fetchall()}
        if got != expected:
            wrong.append(f"{name}: extra {sorted(got - expected)}, missing {sorted(expected - got)}")
    assert not wrong, "\n".join(wrong)


# --- dbt ------------------------------------------------------------------------------------------------

DBT_PROJECT = Path(__file__).resolve().parents[2] / "dbt_project"
# dbt resolves ref() to models of the project: the stand-in audience is a model that exists there.
DBT_CATALOG = Catalog.default(audiences=["win_back_dormant"])


@pytest.mark.slow
def test_dbt_target_runs_through_dbt_on_duckdb(tmp_path: Path) -> None:
    """The dbt target's text, put into one query (a union of every case), is rendered and run by
    `dbt show --inline` against a copy of the fixture as of 2026-03-10: ref(), source(),
    as_of_date(), as_of_cutoff() and dbt.dateadd() come from the real project, values are literals."""
    path = tmp_path / "fixture.duckdb"
    con = duckdb.connect(str(path))
    build(con.execute, con.executemany, "?")
    con.execute("create table marts.win_back_dormant as select * from marts.recent_buyers")
    con.close()  # one writer: dbt opens the file
    parts = []
    for name, text, _ in CASES:
        cond = parse_condition(yaml.safe_load(text.replace("recent_buyers", "win_back_dormant")), "test.yml")
        sql, params = compile_condition(cond, DBT_CATALOG, CompileContext(target="dbt"))
        assert params == []
        parts.append(
            f"select '{name}' as case_name, c.customer_id from {{{{ ref('dim_customers') }}}} as c where {sql}"
        )
    env = {**os.environ, "TIDELINE_WAREHOUSE": str(path), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    dbt = str(Path(sys.executable).parent / "dbt")
    done = subprocess.run(
        [dbt, "show", "--inline", "\nunion all\n".join(parts), "--limit", "-1", "--output", "json", "--quiet",
         "--profiles-dir", str(DBT_PROJECT), "--target-path", str(tmp_path / "target"),
         "--vars", json.dumps({"as_of": AS_OF.isoformat()})],
        cwd=DBT_PROJECT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    rows = json.loads(done.stdout[done.stdout.index("{") :])["show"]
    got: dict[str, set[str]] = {name: set() for name, _, _ in CASES}
    for row in rows:
        got[row["case_name"]].add(row["customer_id"])
    wrong = [
        f"{name}: extra {sorted(got[name] - expected)}, missing {sorted(expected - got[name])}"
        for name, _, expected in CASES
        if got[name] != expected
    ]
    assert not wrong, "\n".join(wrong)


def test_an_instant_with_a_zone_is_compared_in_utc(duck: tuple) -> None:
    """The warehouse keeps UTC: 23:30+01:00 is 22:30 UTC, before c11's signup at 23:00 UTC."""
    con, _ = duck
    for text, expected in [
        ("attribute: {name: signed_up_at, gte: '2026-03-10T23:30:00+01:00'}", {"c11"}),  # 22:30 UTC <= 23:00
        ("attribute: {name: signed_up_at, gte: '2026-03-10T23:30:00+00:00'}", set()),
    ]:
        sql, params = compiled(text, "duckdb")
        assert {r[0] for r in con.execute(members_query(sql), params).fetchall()} == expected, text
