"""Lead scores built by dbt on a small landing zone, against points, caps, decay, stages and the
backtest worked out by hand, as of 2026-03-31. The project is copied with the rules file RULES
below (so tuning the shipped rules does not change the hand-worked figures) and generated with
activation.leads, as `tideline leads build` does.

Rules: fit (cap 25) email consent 10, core market (DE, AT, CH, NL, FR) 10, signed up within
30 days 5; intent (cap 50, half-life 10 days) pricing page 25 (within 60 days), webinar form 25
(within 60), cart 15 (within 30); engagement (cap 25, half-life 14) 3+ product views in 14 days 10,
any form 10 (within 30). Stages: nurtured 15, marketing_qualified 40. Points on day D:
points * 0.5 ^ (age / half-life), age = whole days since the latest occurrence, 2 decimals.

L1 (DE, email consent, signed up 2026-01-10): fit 20.
  pricing 2026-03-01 and 2026-03-31 (the latest counts: age 0, 25), webinar form 2026-03-21
  (age 10: 25 * 0.5 = 12.5; the form also gives engagement 10 * 0.5^(10/14) = 6.10), cart
  2026-03-31 (15): intent 25 + 12.5 + 15 = 52.5, capped at 50; product views 03-20, 03-25, 03-30
  (3 within 14 days, latest age 1: 10 * 0.5^(1/14) = 9.52): engagement 15.62; total 85.62, MQL.
  History: nurtured from signup (fit 20); 2026-03-01 20 + 25 = 45: MQL (first crossing); the pricing
  points decay: 2026-03-04 20 + 25 * 0.5^0.3 = 40.31 (MQL), 2026-03-05 20 + 25 * 0.5^0.4 = 38.95:
  nurtured; 2026-03-21 the webinar form: 20 + pricing 25 * 0.5^2 (6.25) + webinar 25 + form 10 =
  61.25: MQL again and since (it stays above 40 as the points decay until the pricing view of 03-31).
L2 (US, no consent, signed up 2026-03-20): fit 5 (recent signup). Cart on 2026-03-01 23:00 is 30
  days old: outside `within_days: 30` (at most 29 days old). Two product views: not 3. Total 5: raw_lead.
L3 (FR, signed up 2025-12-01): fit 10, raw_lead.
B1 (DE, signed up 2026-02-01) viewed pricing 2026-03-10 and bought 2026-03-12: not a lead; history
  raw_lead (10) -> nurtured 03-10 (35) -> customer on 03-12.
Backtest, cutoff 2026-03-01 (30 days back): leads L1 45, L2 20 (cart that evening; fit is judged as
  of the as-of date), L3 10, B1 10, and B1 bought. Lead score ranks B1 tied with L3 (mean rank 1.5 of
  4): AUC (1.5 - 1) / 3 = 0.1667. Recency (days since the latest event or signup): L3 90, B1 28,
  L1 0, L2 0 -> B1 rank 2: AUC (2 - 1) / 3 = 0.3333. No propensity scores as of the cutoff.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from activation import leads
from activation.leads.rules import PROJECT_DIR
from tests.helpers import Warehouse, load_landing_zone, write_csv, write_jsonl
from tideline.dbt_manifest import dbt_executable

pytestmark = pytest.mark.slow

AS_OF = "2026-03-31"
PRICING = "https://shop.example.com/pricing"
WEBINAR = "https://shop.example.com/webinar"
RULES = {
    "half_life_days": 14,
    "stages": {"nurtured": 15, "marketing_qualified": 40},
    "groups": {
        "fit": {"kind": "fit", "cap": 25},
        "intent": {"kind": "behaviour", "cap": 50, "half_life_days": 10},
        "engagement": {"kind": "behaviour", "cap": 25},
    },
    "rules": [
        {"name": "reachable_by_email", "group": "fit", "points": 10, "reason": "Consented to email",
         "where": {"consent": "email"}},
        {"name": "core_market", "group": "fit", "points": 10, "reason": "Lives in a core market",
         "where": {"attribute": {"name": "country", "in": ["DE", "AT", "CH", "NL", "FR"]}}},
        {"name": "recent_signup", "group": "fit", "points": 5, "reason": "Signed up in the last 30 days",
         "where": {"attribute": {"name": "signed_up_at", "within_days": 30}}},
        {"name": "viewed_pricing", "group": "intent", "points": 25, "reason": "Viewed pricing",
         "where": {"event": {"type": "page_view", "within_days": 60,
                             "where": {"attribute": {"name": "url", "eq": PRICING}}}}},
        {"name": "registered_webinar", "group": "intent", "points": 25, "reason": "Registered for a webinar",
         "where": {"event": {"type": "form_submit", "within_days": 60,
                             "where": {"attribute": {"name": "url", "eq": WEBINAR}}}}},
        {"name": "carted", "group": "intent", "points": 15, "reason": "Added to cart",
         "where": {"event": {"type": ["add_to_cart", "checkout_started"], "within_days": 30}}},
        {"name": "browsed_products", "group": "engagement", "points": 10, "reason": "Viewed 3+ products in 14 days",
         "where": {"event": {"type": "product_view", "within_days": 14, "count": {"gte": 3}}}},
        {"name": "submitted_form", "group": "engagement", "points": 10, "reason": "Submitted a form",
         "where": {"event": {"type": "form_submit", "within_days": 30}}},
        {"name": "clicked_email", "group": "engagement", "points": 10, "reason": "Clicked an email",
         "where": {"message": {"clicked": True, "within_days": 30}}},
    ],
}  # fmt: skip


def event(kind: str, at: str, customer: str, url: str | None = None) -> dict:
    row = {"event_type": kind, "occurred_at": at, "customer_id": customer}
    if url:
        row["url"] = url
    return row


def write_landing_zone(raw: Path) -> None:
    write_csv(
        raw / "crm/contacts/contacts.csv",
        [
            {"customer_id": "L1", "email": "l1@example.com", "country": "DE", "created_at": "2026-01-10"},
            {"customer_id": "L2", "email": "l2@example.com", "country": "US", "created_at": "2026-03-20"},
            {"customer_id": "L3", "email": "l3@example.com", "country": "FR", "created_at": "2025-12-01"},
            {"customer_id": "B1", "email": "b1@example.com", "country": "DE", "created_at": "2026-02-01"},
        ],
        [
            "customer_id",
            "email",
            "phone",
            "first_name",
            "last_name",
            "country",
            "city",
            "timezone",
            "created_at",
        ],
    )
    write_csv(
        raw / "crm/consents/consents.csv",
        [{"customer_id": "L1", "channel": "email", "status": "granted", "consented_at": "2026-01-10"}],
    )
    write_csv(
        raw / "commerce/orders/orders.csv",
        [{"order_id": "o1", "customer_id": "B1", "ordered_at": "2026-03-12T10:00:00Z", "amount": "80.00"}],
        ["order_id", "customer_id", "ordered_at", "amount", "status", "coupon_code", "email"],
    )
    write_jsonl(
        raw / "events/2026-03.jsonl",
        [
            event("page_view", "2026-03-01T09:00:00Z", "L1", PRICING),
            event("form_submit", "2026-03-21T15:00:00Z", "L1", WEBINAR),
            event("product_view", "2026-03-20T10:00:00Z", "L1"),
            event("product_view", "2026-03-25T10:00:00Z", "L1"),
            event("product_view", "2026-03-30T10:00:00Z", "L1"),
            event("page_view", "2026-03-31T08:00:00Z", "L1", PRICING),
            event("add_to_cart", "2026-03-31T08:05:00Z", "L1"),
            event("page_view", "2026-04-02T08:00:00Z", "L1", PRICING),  # after the as-of date: ignored
            event("add_to_cart", "2026-03-01T23:00:00Z", "L2"),
            event("product_view", "2026-03-25T10:00:00Z", "L2"),
            event("product_view", "2026-03-26T10:00:00Z", "L2"),
            event("page_view", "2026-03-10T10:00:00Z", "B1", PRICING),
        ],
    )
    write_csv(
        raw / "commerce/products/products.csv", [{"product_id": "p1", "name": "Mug", "category": "Kitchen"}]
    )
    (raw / "commerce/order_items").mkdir(parents=True)
    items = {"order_id": ["o1"], "product_id": ["p1"], "quantity": [1], "unit_price": [80.0]}
    pq.write_table(pa.table(items), raw / "commerce/order_items/items.parquet")


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    base = tmp_path_factory.mktemp("leads")
    root = base / "dbt_project"
    shutil.copytree(PROJECT_DIR, root, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    (root / "lead_scoring.yml").write_text(yaml.safe_dump(RULES, sort_keys=False))
    leads.build(root)
    write_landing_zone(base / "raw")
    path = base / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    try:
        load_landing_zone(base / "raw", con)
    finally:
        con.close()
    env = {**os.environ, "TIDELINE_WAREHOUSE": str(path), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    done = subprocess.run(
        [dbt_executable(), "build", "--profiles-dir", str(root), "--vars", json.dumps({"as_of": AS_OF})]
        + ["--exclude-resource-type", "unit_test"],  # none tests lead scoring (tests/helpers.py)
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"dbt build failed:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"
    return Warehouse(path)


def test_lead_scores_points_caps_and_decay_by_hand(warehouse) -> None:
    rows = {r["customer_id"]: r for r in warehouse.dicts("select * from marts.lead_scores")}
    assert set(rows) == {"L1", "L2", "L3"}  # B1 bought: not a lead
    l1 = rows["L1"]
    assert (l1["fit_score"], l1["engagement_score"], l1["total_score"]) == (20.0, 65.62, 85.62)
    assert l1["lead_stage"] == "marketing_qualified" and l1["is_mql"] and l1["is_capped"]
    assert l1["mql_first_on"] == dt.date(2026, 3, 1)
    assert l1["stage_entered_on"] == dt.date(2026, 3, 21)
    assert l1["top_reasons"] == (
        "Viewed pricing today (+25 of 25); Added to cart today (+15 of 15); "
        "Registered for a webinar 10 days ago (+13 of 25)"
    )
    l2, l3 = rows["L2"], rows["L3"]
    assert (l2["fit_score"], l2["engagement_score"], l2["lead_stage"]) == (5.0, 0.0, "raw_lead")
    assert l2["top_reasons"] == "Signed up in the last 30 days (+5)" and l2["mql_first_on"] is None
    assert (l3["total_score"], l3["lead_stage"]) == (10.0, "raw_lead")


def test_every_rule_with_its_decayed_points(warehouse) -> None:
    reasons = {
        (r[0], r[1]): (r[2], r[3])
        for r in warehouse.query("select customer_id, rule, points, age_days from marts.lead_score_reasons")
    }
    assert reasons == {
        ("L1", "reachable_by_email"): (10.0, None),
        ("L1", "core_market"): (10.0, None),
        ("L1", "viewed_pricing"): (25.0, 0),
        ("L1", "registered_webinar"): (12.5, 10),
        ("L1", "carted"): (15.0, 0),
        ("L1", "browsed_products"): (9.52, 1),
        ("L1", "submitted_form"): (6.1, 10),
        ("L2", "recent_signup"): (5.0, None),
        ("L3", "core_market"): (10.0, None),
    }


def test_daily_scores_cross_the_threshold_and_fall_back_with_decay(warehouse) -> None:
    daily = {
        r[0]: (r[1], r[2])
        for r in warehouse.query(
            "select score_on, total_score, lead_stage from marts.lead_score_daily where customer_id = 'L1'"
        )
    }
    assert daily[dt.date(2026, 2, 28)] == (20.0, "nurtured")
    assert daily[dt.date(2026, 3, 1)] == (45.0, "marketing_qualified")
    assert daily[dt.date(2026, 3, 4)] == (40.31, "marketing_qualified")  # 20 + 25 * 0.5^0.3 = 20 + 20.31
    assert daily[dt.date(2026, 3, 5)] == (38.95, "nurtured")  # 20 + 25 * 0.5^0.4
    assert min(daily) == dt.date(2026, 1, 10)  # scored from the signup on


def test_stage_history_spells(warehouse) -> None:
    spells = warehouse.query(
        "select customer_id, lead_stage, entered_on, exited_on, previous_stage, next_stage "
        "from marts.lead_stage_history order by customer_id, entered_on"
    )
    d = dt.date
    assert [s for s in spells if s[0] in ("L1", "B1")] == [
        ("B1", "raw_lead", d(2026, 2, 1), d(2026, 3, 10), None, "nurtured"),
        ("B1", "nurtured", d(2026, 3, 10), d(2026, 3, 12), "raw_lead", "customer"),
        ("L1", "nurtured", d(2026, 1, 10), d(2026, 3, 1), None, "marketing_qualified"),
        ("L1", "marketing_qualified", d(2026, 3, 1), d(2026, 3, 5), "nurtured", "nurtured"),
        ("L1", "nurtured", d(2026, 3, 5), d(2026, 3, 21), "marketing_qualified", "marketing_qualified"),
        ("L1", "marketing_qualified", d(2026, 3, 21), None, "nurtured", None),
    ]


def test_backtest_auc_by_hand(warehouse) -> None:
    rows = {r["scorer"]: r for r in warehouse.dicts("select * from marts.lead_score_backtest")}
    assert rows["lead_score"]["cutoff_on"] == dt.date(2026, 3, 1)
    assert (rows["lead_score"]["leads"], rows["lead_score"]["buyers"]) == (4, 1)
    assert rows["lead_score"]["roc_auc"] == pytest.approx(0.1667)
    assert rows["recency"]["roc_auc"] == pytest.approx(0.3333)
    assert rows["purchase_propensity"]["roc_auc"] is None
    assert "no propensity scores as of the cutoff" in rows["purchase_propensity"]["note"]
