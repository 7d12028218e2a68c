"""The customer marts on a small hand-built landing zone, with every expected value worked out by hand.

As of 2025-06-30. People and what the data says about them:

- c1, c2, c3 are one person: c1 and c2 share an email (different case and spaces),
  c2 and c3 share a phone (different formats): c1 <-> c3 only transitively. c1 was
  created first, so the customer is c1. Orders: o1 2024-01-10 (110.00: the later
  file's version wins over 100.00), o2 2024-09-01 50.00 coupon, o3 2025-05-01
  80.00 coupon. Gaps 235 and 242 days (> 180): reactivated twice; now active since
  2025-05-31 (reactivated + 30 days). Coupons on 2 of 3 orders: price_sensitive.
  Anonymous a1 browsed from google/cpc before signing up as c1: acquisition google.
  Email consent granted on c1, later revoked on c2: the latest wins, so no opt-in.
- c4: one order 2025-06-20 (40.00) -> new; an order dated after the as-of date is
  ignored; SMS opt-in; an email consent dated after the as-of date is ignored.
- c5: signed up 2025-06-25 on device a5, then added to cart anonymously on a5:
  prospect, new_signup and (stitched) cart_abandoner.
- c6 (+ guest g2 through the order email " DAVE@example.com"): orders 2023-02-01
  500, 2023-02-15 25, 2023-03-01 700 -> churned since 2023-08-28: dormant, vip.
- c7: one purchase 2025-02-15 (30.00; a cancelled order doesn't count) -> at_risk
  since 2025-05-16; cart activity 2025-06-28 and no order since: cart_abandoner.
- g1: guest with no CRM row, one order 2025-06-29 (300.00) a day after its cart
  activity (so no abandoner): known since that cart event, so prospect -> new;
  one_time_buyer, high_potential.
- c10, c11, c12 share test@example.com, more accounts than the placeholder limit (2
  in this build): never merged.
- c13, c14: contacts with a bad email / timestamp / phone: fields cleared, rows kept.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import build_warehouse, write_csv, write_jsonl

pytestmark = pytest.mark.slow  # every test reads one warehouse built by dbt

AS_OF = "2025-06-30"
VARS = {"identity_max_accounts_per_key": 2, "tag_high_potential_top_aov_share": 0.5}


def write_landing_zone(raw: Path) -> None:
    write_csv(
        raw / "crm/contacts/contacts.csv",
        [
            {
                "customer_id": "c1",
                "email": " Alice@Example.COM ",
                "country": "DE",
                "created_at": "2024-01-05T09:00:00Z",
                "first_name": "Alice",
                "source": "newsletter",
                "birth_date": "1990-02-28",
            },
            {
                "customer_id": "c2",
                "email": "alice@example.com",
                "phone": "030 1234567",
                "country": "DE",
                "created_at": "2024-06-01",
            },
            {
                "customer_id": "c3",
                "email": "al.other@example.com",
                "phone": "0049 30 1234567",
                "country": "DE",
                "created_at": "2024-07-01",
                "birth_date": "1991-13-01",  # not a date: cleared, reported
            },
            {
                "customer_id": "c4",
                "email": "bob@example.com",
                "phone": "(415) 555-0123",
                "country": "US",
                "created_at": "2024-02-01",
                "birth_date": "2999-01-01",  # after the as-of date: cleared, reported
            },
            {
                "customer_id": "c5",
                "email": "carol@example.com",
                "phone": "415-555-0199",
                "country": "US",
                "created_at": "2025-06-25T10:00:00Z",
            },
            {
                "customer_id": "c6",
                "email": "dave@example.com",
                "phone": "07700 900123",
                "country": "GB",
                "created_at": "2023-01-01",
                "source": "referral",
            },
            {"customer_id": "c7", "email": "erin@example.com", "country": "FR", "created_at": "2024-03-01"},
            {"customer_id": "c10", "email": "test@example.com", "created_at": "2024-05-01"},
            {"customer_id": "c11", "email": "TEST@example.com", "created_at": "2024-05-01"},
            {"customer_id": "c12", "email": "test@example.com ", "created_at": "2024-05-01"},
            {"customer_id": "", "email": "nobody@example.com", "created_at": "2024-05-01"},  # row 11
            {"customer_id": "c13", "email": "broken@", "created_at": "yesterday"},  # row 12
            {"customer_id": "c14", "phone": "12345", "country": "DE", "created_at": "2024-05-01"},  # row 13
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
            "source",
            "birth_date",
        ],
    )
    order_cols = ["order_id", "customer_id", "ordered_at", "amount", "status", "coupon_code", "email"]
    write_csv(
        raw / "commerce/orders/2025.csv",
        [
            {"order_id": "o1", "customer_id": "c1", "ordered_at": "2024-01-10T10:00:00Z", "amount": "100.00"},
            {
                "order_id": "o2",
                "customer_id": "c2",
                "ordered_at": "2024-09-01",
                "amount": "50.00",
                "coupon_code": "SAVE10",
            },
            {
                "order_id": "o3",
                "customer_id": "c3",
                "ordered_at": "2025-05-01T08:00:00+02:00",
                "amount": "80",
                "coupon_code": "SAVE10",
            },
            {"order_id": "o4", "customer_id": "c4", "ordered_at": "2025-06-20", "amount": "40.00"},
            {"order_id": "o5", "customer_id": "c6", "ordered_at": "2023-02-01", "amount": "500"},
            {"order_id": "o6", "customer_id": "c6", "ordered_at": "2023-03-01", "amount": "700"},
            {"order_id": "o7", "customer_id": "c7", "ordered_at": "2025-02-15", "amount": "30.00"},
            {
                "order_id": "o8",
                "customer_id": "c7",
                "ordered_at": "2025-03-01",
                "amount": "99",
                "status": "cancelled",
            },
            {"order_id": "o9", "customer_id": "g1", "ordered_at": "2025-06-29T10:00:00Z", "amount": "300.00"},
            {
                "order_id": "o10",
                "customer_id": "g2",
                "ordered_at": "2023-02-15",
                "amount": "25",
                "email": " DAVE@example.com",
            },
            {"order_id": "o11", "customer_id": "c4", "ordered_at": "2025-13-45", "amount": "10"},  # row 11
            {"order_id": "o12", "customer_id": "c4", "ordered_at": "2025-06-01", "amount": "12,5"},  # row 12
            {"order_id": "o13", "customer_id": "c4", "ordered_at": "2025-06-01", "amount": "-5"},  # row 13
            {"order_id": "o14", "customer_id": "", "ordered_at": "2025-06-01", "amount": "10"},  # row 14
            {"order_id": "", "customer_id": "c4", "ordered_at": "2025-06-01", "amount": "10"},  # row 15
            {
                "order_id": "o15",
                "customer_id": "c4",
                "ordered_at": "2025-06-01",
                "amount": "10",
                "status": "lost",
            },  # row 16
            {
                "order_id": "o16",
                "customer_id": "c4",
                "ordered_at": "2025-07-05",
                "amount": "500",
            },  # after as-of
        ],
        order_cols,
    )
    write_csv(
        raw / "commerce/orders/2025b.csv",
        [{"order_id": "o1", "customer_id": "c1", "ordered_at": "2024-01-10T10:00:00Z", "amount": "110.00"}],
        order_cols,
    )
    write_csv(
        raw / "crm/consents/consents.csv",
        [
            {"customer_id": "c1", "channel": "email", "status": "granted", "consented_at": "2024-01-05"},
            {"customer_id": "c2", "channel": "email", "status": "revoked", "consented_at": "2025-01-01"},
            {"customer_id": "c4", "channel": "SMS", "status": "opt_in", "consented_at": "2024-02-01"},
            {"customer_id": "c4", "channel": "email", "status": "granted", "consented_at": "2025-07-15"},
            {
                "customer_id": "zz",
                "channel": "email",
                "status": "granted",
                "consented_at": "2024-01-01",
            },  # row 5
            {
                "customer_id": "c6",
                "channel": "push",
                "status": "maybe",
                "consented_at": "2024-01-01",
            },  # row 6
        ],
    )
    write_jsonl(
        raw / "events/2025-06.jsonl",
        [
            {
                "event_type": "page_view",
                "occurred_at": "2024-01-03T12:00:00Z",
                "anonymous_id": "a1",
                "utm_source": "Google",
                "utm_medium": "cpc",
            },
            {
                "event_type": "signup",
                "occurred_at": "2024-01-05T09:00:00Z",
                "anonymous_id": "a1",
                "customer_id": "c1",
            },
            {
                "event_type": "signup",
                "occurred_at": "2025-06-25T10:00:00Z",
                "anonymous_id": "a5",
                "customer_id": "c5",
            },
            {"event_type": "add_to_cart", "occurred_at": "2025-06-27T10:00:00Z", "anonymous_id": "a5"},
            {"event_type": "add_to_cart", "occurred_at": "2025-06-28T10:00:00Z", "customer_id": "c7"},
            {"event_type": "add_to_cart", "occurred_at": "2025-06-28T09:00:00Z", "customer_id": "g1"},
            {"event_type": "page_view", "occurred_at": "2025-06-01T00:00:00Z", "anonymous_id": "a9"},
            "not json",  # line 8
            {"event_type": "page_view", "occurred_at": "2025-06-01T00:00:00Z"},  # line 9: no id
            {"event_type": "page_view", "occurred_at": "bad", "anonymous_id": "a9"},  # line 10
        ],
    )
    write_csv(
        raw / "commerce/products/products.csv", [{"product_id": "p1", "name": "Mug", "category": "Kitchen"}]
    )
    items = pa.table(
        {
            "order_id": ["o1", "o999"],
            "product_id": ["p1", "p1"],
            "quantity": [1, 1],
            "unit_price": [110.0, 10.0],
        }
    )
    (raw / "commerce/order_items").mkdir(parents=True)
    pq.write_table(items, raw / "commerce/order_items/items.parquet")


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory):
    """The suite's one helper build that runs dbt's unit tests too (tests/helpers.py says why)."""
    base = tmp_path_factory.mktemp("marts")
    write_landing_zone(base / "raw")
    return build_warehouse(base / "raw", base / "warehouse.duckdb", AS_OF, VARS, unit_tests=True)


def test_every_dbt_unit_test_of_the_project_ran_and_passed_in_this_build(warehouse) -> None:
    """The other helper builds skip the unit tests; this one must run them all (dbt_target is where
    tests.helpers.dbt_build writes the build's artefacts)."""
    target = warehouse.path.parent / "dbt_target"
    declared = set(json.loads((target / "manifest.json").read_text())["unit_tests"])
    results = json.loads((target / "run_results.json").read_text())["results"]
    ran = {r["unique_id"]: r["status"] for r in results if r["unique_id"].startswith("unit_test.")}
    assert len(declared) >= 17 and set(ran) == declared
    assert set(ran.values()) == {"pass"}


def test_identity_merges_transitively_and_skips_placeholder_keys(warehouse) -> None:
    mapping = dict(
        ((s, i), c)
        for s, i, c in warehouse.query("select source, source_id, customer_id from marts.customer_id_map")
    )
    assert mapping[("crm", "c1")] == "c1"
    assert mapping[("crm", "c2")] == "c1"  # same email, other case and spaces
    assert mapping[("crm", "c3")] == "c1"  # same phone as c2 in another format: transitive
    assert mapping[("commerce", "g2")] == "c6"  # guest checkout linked by order email
    assert mapping[("commerce", "g1")] == "g1"  # orders, no CRM row: keeps its id
    assert mapping[("anonymous", "a1")] == "c1"
    assert mapping[("anonymous", "a5")] == "c5"
    assert ("anonymous", "a9") not in mapping  # never identified
    assert {mapping[("crm", c)] for c in ("c10", "c11", "c12")} == {"c10", "c11", "c12"}  # placeholder email
    customers = {r[0] for r in warehouse.query("select customer_id from marts.dim_customers")}
    assert customers == {"c1", "c4", "c5", "c6", "c7", "g1", "c10", "c11", "c12", "c13", "c14"}


def test_dim_customers_profile(warehouse) -> None:
    rows = {r["customer_id"]: r for r in warehouse.dicts("select * from marts.dim_customers")}
    c1 = rows["c1"]
    assert c1["merged_accounts"] == 3
    assert c1["email"] == "alice@example.com"
    assert c1["phone"] == "+49301234567"
    assert c1["first_name"] == "Alice"
    assert (c1["acquisition_source"], c1["acquisition_medium"]) == ("google", "cpc")
    assert c1["email_opt_in"] is False  # granted on c1, revoked later on c2
    assert c1["email_consent_at"] == dt.datetime(2025, 1, 1)  # when that latest event happened
    assert c1["order_count"] == 3
    assert float(c1["revenue"]) == pytest.approx(240.0)  # 110 (later file wins) + 50 + 80
    assert c1["coupon_order_count"] == 2
    assert c1["birth_date"] == dt.date(1990, 2, 28)  # c3's unreadable one is cleared, never merged in
    c4 = rows["c4"]
    assert c4["phone"] == "+14155550123"
    assert (c4["sms_opt_in"], c4["email_opt_in"], c4["push_opt_in"]) == (True, False, False)
    # the email consent after the as-of date is ignored, so there is no email event to date
    assert (c4["sms_consent_at"], c4["email_consent_at"], c4["push_consent_at"]) == (
        dt.datetime(2024, 2, 1),
        None,
        None,
    )
    assert c4["order_count"] == 1 and float(c4["revenue"]) == pytest.approx(
        40.0
    )  # o16 is after the as-of date
    assert rows["c6"]["phone"] == "+447700900123"
    assert rows["c6"]["merged_accounts"] == 2 and float(rows["c6"]["revenue"]) == pytest.approx(1225.0)
    assert rows["c6"]["acquisition_source"] == "referral"  # no web data: CRM lead source
    assert rows["c5"]["acquisition_source"] == "direct"  # first session without utm
    assert rows["g1"]["email"] is None and rows["g1"]["is_buyer"] is True
    assert rows["c13"]["email"] is None and rows["c13"]["signed_up_at"] is None  # cleared, row kept
    assert rows["c14"]["phone"] is None
    assert rows["c4"]["birth_date"] is None and rows["c7"]["birth_date"] is None


def test_rfm_values_scores_and_segments(warehouse) -> None:
    rfm = {
        r[0]: r[1:]
        for r in warehouse.query(
            "select customer_id, recency_days, frequency, monetary, r_score, f_score, m_score, rfm_score, rfm_segment "
            "from marts.customer_rfm"
        )
    }
    # recency desc -> r: c6 852 (1), c7 135 (2), c1 60 (3), c4 10 (4), g1 1 (5)
    # frequency: c4, c7, g1 tie at 1 -> 1; c1, c6 tie at 3 -> rank 4 -> 1 + floor(5*3/5) = 4
    # monetary: c7 30 (1), c4 40 (2), c1 240 (3), g1 300 (4), c6 1225 (5)
    assert set(rfm) == {"c1", "c4", "c6", "c7", "g1"}
    expected = {
        "c1": (60, 3, 240.0, 3, 4, 3, "343", "Loyal"),  # fm = floor((4+3+1)/2) = 4
        "c4": (10, 1, 40.0, 4, 1, 2, "412", "Potential Loyalist"),  # fm 2
        "c6": (852, 3, 1225.0, 1, 4, 5, "145", "Can't Lose"),  # fm 5
        "c7": (135, 1, 30.0, 2, 1, 1, "211", "Hibernating"),  # fm 1
        "g1": (1, 1, 300.0, 5, 1, 4, "514", "Potential Loyalist"),  # fm 3
    }
    for customer, values in expected.items():
        got = rfm[customer]
        assert (got[0], got[1], float(got[2]), *got[3:]) == values, customer


def test_lifecycle_stages_and_history(warehouse) -> None:
    current = {
        r[0]: r[1:]
        for r in warehouse.query(
            "select customer_id, lifecycle_stage, cast(stage_entered_on as varchar), previous_stage "
            "from marts.customer_lifecycle"
        )
    }
    assert current["c1"] == ("active", "2025-05-31", "reactivated")
    assert current["c4"] == ("new", "2025-06-20", "prospect")
    assert current["c5"] == ("prospect", "2025-06-25", None)
    assert current["c6"] == ("churned", "2023-08-28", "at_risk")
    assert current["c7"] == ("at_risk", "2025-05-16", "active")
    assert current["g1"] == ("new", "2025-06-29", "prospect")  # first seen at its cart event on 06-28
    assert current["c10"][0] == "prospect"
    history = [
        r[0]
        for r in warehouse.query(
            "select stage from marts.customer_lifecycle_history where customer_id = 'c1' order by spell_number"
        )
    ]
    assert history == [
        "prospect",
        "new",
        "active",
        "at_risk",
        "churned",
        "reactivated",
        "active",
        "at_risk",
        "churned",
        "reactivated",
        "active",
    ]


def test_tags(warehouse) -> None:
    tags: dict[str, set[str]] = {}
    for customer, tag in warehouse.query("select customer_id, tag from marts.customer_tags"):
        tags.setdefault(tag, set()).add(customer)
    assert tags == {
        "vip": {"c6"},
        "high_potential": {"g1"},  # AOV rank share 0.25 < 0.5, one order, first within 90 days
        "new_signup": {"c5", "g1"},  # g1 first seen (cart event) 2025-06-28
        "dormant": {"c6"},
        "at_risk": {"c7"},
        "price_sensitive": {"c1"},
        "cart_abandoner": {"c5", "c7"},
        "one_time_buyer": {"c4", "c7", "g1"},
    }
    reasons = dict(
        ((c, t), r) for c, t, r in warehouse.query("select customer_id, tag, reason from marts.customer_tags")
    )
    assert reasons[("c1", "price_sensitive")] == "2 of 3 orders with a coupon"
    health = {
        r[0]: r[1:]
        for r in warehouse.query("select tag, customers_tagged, coverage_share from marts.tag_health")
    }
    assert health["one_time_buyer"] == (3, pytest.approx(round(3 / 11, 4)))
    assert len(health) == 9
    assert health["high_value_at_risk"][0] == 0  # no ML scores in this build: the tag is empty, not missing


def test_every_malformed_row_reaches_rejects_with_a_reason(warehouse) -> None:
    rejects = {
        (e, f, r, fld): (action, reason)
        for e, f, r, fld, action, reason in warehouse.query(
            "select entity, source_file, source_row, field, action, reason from marts.rejects"
        )
    }
    orders = "commerce/orders/2025.csv"
    expected = {
        ("commerce_orders", orders, 1, "order_id"): "row_rejected",  # superseded by 2025b.csv
        ("commerce_orders", orders, 11, "ordered_at"): "row_rejected",
        ("commerce_orders", orders, 12, "amount"): "row_rejected",
        ("commerce_orders", orders, 13, "amount"): "row_rejected",
        ("commerce_orders", orders, 14, "customer_id"): "row_rejected",
        ("commerce_orders", orders, 15, "order_id"): "row_rejected",
        ("commerce_orders", orders, 16, "status"): "row_rejected",
        ("crm_contacts", "crm/contacts/contacts.csv", 11, "customer_id"): "row_rejected",
        ("crm_contacts", "crm/contacts/contacts.csv", 12, "email"): "field_cleared",
        ("crm_contacts", "crm/contacts/contacts.csv", 12, "created_at"): "field_cleared",
        ("crm_contacts", "crm/contacts/contacts.csv", 13, "phone"): "field_cleared",
        ("crm_contacts", "crm/contacts/contacts.csv", 3, "birth_date"): "field_cleared",
        ("crm_contacts", "crm/contacts/contacts.csv", 4, "birth_date"): "field_cleared",
        ("crm_consents", "crm/consents/consents.csv", 5, "customer_id"): "row_rejected",  # unknown customer
        ("crm_consents", "crm/consents/consents.csv", 6, "status"): "row_rejected",
        ("events", "events/2025-06.jsonl", 8, None): "row_rejected",  # not JSON
        ("events", "events/2025-06.jsonl", 9, "anonymous_id"): "row_rejected",
        ("events", "events/2025-06.jsonl", 10, "occurred_at"): "row_rejected",
        ("commerce_order_items", "commerce/order_items/items.parquet", 2, "order_id"): "row_rejected",
    }
    assert {k: v[0] for k, v in rejects.items()} == expected
    assert "use a dot as decimal separator" in rejects[("commerce_orders", orders, 12, "amount")][1]
    assert "negative" in rejects[("commerce_orders", orders, 13, "amount")][1]
    assert "is not a date" in rejects[("crm_contacts", "crm/contacts/contacts.csv", 3, "birth_date")][1]
    assert (
        "not a plausible birth date"
        in rejects[("crm_contacts", "crm/contacts/contacts.csv", 4, "birth_date")][1]
    )
    assert "unknown customer" in rejects[("crm_consents", "crm/consents/consents.csv", 5, "customer_id")][1]
    assert (
        "superseded by commerce/orders/2025b.csv row 1"
        in rejects[("commerce_orders", orders, 1, "order_id")][1]
    )
    message = warehouse.query(
        "select message from marts.rejects where source_file = ? and source_row = 11", [orders]
    )[0][0]
    assert message.startswith('commerce/orders/2025.csv row 11: ordered_at "2025-13-45" is not a timestamp')


def test_nothing_is_lost_every_landing_row_is_used_or_rejected(warehouse) -> None:
    """Each landing order row is either a staged order or a row_rejected entry, never neither."""
    total = warehouse.query("select count(*) from landing.commerce_orders")[0][0]
    staged = warehouse.query("select count(*) from staging.stg_commerce__orders")[0][0]
    rejected = warehouse.query(
        "select count(distinct source_file || source_row) from marts.rejects "
        "where entity = 'commerce_orders' and action = 'row_rejected'"
    )[0][0]
    assert total == 18 and staged + rejected == total


def test_ml_placeholder_matches_what_the_scorer_writes(warehouse) -> None:
    """dbt creates ml.customer_scores empty before the first scoring run; its columns are the scorer's."""
    from models_ml.scoring import SCORE_COLUMNS

    columns = [
        r[0]
        for r in warehouse.query(
            "select column_name from information_schema.columns where table_schema = 'ml' "
            "and table_name = 'customer_scores' order by ordinal_position"
        )
    ]
    assert columns == list(SCORE_COLUMNS)
