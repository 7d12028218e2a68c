"""Each staff notification rule's candidates on hand-made marts, worked out by hand (as of
2026-12-07, window 7 days): the event keys and the messages in words, with no personal data."""

from __future__ import annotations

import datetime as dt

from activation.staff.config import parse_staff_config
from activation.staff.rules import CANDIDATES, add_candidates, create_candidates
from tests.staff_fixtures import AS_OF, add_lead, add_owners, make_warehouse


def _candidates(rules: dict) -> list[tuple]:
    con = make_warehouse()
    add_owners(con, [("c_1", "s_a", "2026-12-06"), ("c_2", "s_a", "2026-11-01")])  # c_2's link is too old
    add_lead(con, "c_1", None, 10)
    add_lead(con, "c_2", None, 10)
    # predicted CLV ranks (percent_rank, highest first): c_3 0, c_1 0.25, c_4 0.5, c_2 0.75, c_5 1
    con.execute(
        """insert into ml.customer_scores values ('c_1', 0.8, 1234.5, '2026-12-07'), ('c_2', 0.9, 10, '2026-12-07'),
           ('c_3', 0.1, 5000, '2026-12-07'), ('c_4', 0.6, 900, '2026-12-07'), ('c_5', 0.6, 1, '2026-12-07'),
           ('c_5', 0.99, 99999, '2026-11-30')"""  # an older scoring run: not read
    )
    con.execute(
        """insert into intermediate.int_orders_resolved values
           ('o1', 'c_1', '2026-12-06 10:00', 612.40, 'EUR', true), ('o2', 'c_2', '2026-12-06 10:00', 100, 'EUR', true),
           ('o3', 'c_3', '2026-12-06 10:00', 900, 'EUR', false), ('o4', 'c_4', '2026-11-20 10:00', 900, 'EUR', true),
           ('o5', 'c_4', '2026-12-08 10:00', 900, 'EUR', true)"""
    )
    con.execute(
        """insert into intermediate.int_events_stitched values
           ('e1', 'form_submit', '2026-12-06 14:03', 'c_1', 'https://shop.example.com/webinar?email=a@b.example'),
           ('e2', 'page_view', '2026-12-06 14:03', 'c_1', 'https://shop.example.com/'),
           ('e3', 'form_submit', '2026-12-06 14:03', null, 'https://shop.example.com/contact')"""
    )
    staff = parse_staff_config(
        {"link_base_url": "https://x/c", "destinations": {"team": "t"}, "rules": rules},
        "s.yml",
        {"t": {"type": "webhook"}},
    )
    create_candidates(con)
    for rule in staff.rules:
        add_candidates(con, rule, AS_OF)
    return con.execute(
        f"select rule, customer_id, event_key, message from {CANDIDATES} order by 1, 2"
    ).fetchall()


def test_churn_risk_takes_the_top_clv_share_at_risk_keyed_by_iso_week() -> None:
    """share 0.5: c_3 (rank 0, churn 0.1: not at risk), c_1 (0.25, 0.8) and c_4 (0.5, 0.6) qualify;
    2026-12-07 is in ISO week 2026-W50."""
    assert _candidates({"churn_risk_high_value": {"clv_top_share": 0.5}}) == [
        (
            "churn_risk_high_value",
            "c_1",
            "2026-W50",
            "Customer c_1 is at high risk of churning (80%) with a predicted 12-month value of 1,234.50 (top 50%)",
        ),
        (
            "churn_risk_high_value",
            "c_4",
            "2026-W50",
            "Customer c_4 is at high risk of churning (60%) with a predicted 12-month value of 900.00 (top 50%)",
        ),
    ]
    assert _candidates({"churn_risk_high_value": {"min_predicted_clv": 1000}}) == [
        (
            "churn_risk_high_value",
            "c_1",
            "2026-W50",
            "Customer c_1 is at high risk of churning (80%) with a predicted 12-month value of 1,234.50 (at least 1,000.00)",
        ),
    ]


def test_orders_forms_and_owner_links_in_the_window() -> None:
    """o1 only: o2 is not above 250, o3 not completed, o4 before the window, o5 after the as-of date.
    e1 only: e2 is another type, e3 has no customer; the page is its path (the query is dropped)."""
    assert _candidates({"order_above": {"amount": 250}, "form_submitted": {}, "new_lead_assigned": {}}) == [
        (
            "form_submitted",
            "c_1",
            "e1",
            "Customer c_1 submitted form_submit on 2026-12-06 14:03 (page /webinar)",
        ),
        (
            "new_lead_assigned",
            "c_1",
            "s_a@2026-12-06T00:00:00",
            "Lead c_1 was assigned to s_a on 2026-12-06 (stage nurtured, score 10.0)",
        ),
        ("order_above", "c_1", "o1", "Customer c_1 ordered 612.40 EUR (order o1) on 2026-12-06"),
    ]


def test_window_is_whole_days_up_to_the_as_of_date() -> None:
    assert dt.date(2026, 12, 7) == AS_OF
    assert [r[1] for r in _candidates({"order_above": {"amount": 250, "within_days": 30}})] == ["c_1", "c_4"]
