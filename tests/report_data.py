"""Hand-made engagement marts (the issue #5 contract's columns) for the campaign report tests.

Figures the tests expect, worked out from the rows below:
- messages sent: 400 (spring_sale A) + 400 (B) + 200 (winback) = 1,000 sent in fct_messages
  (plus 100 holdout and 20 skipped: no_consent, which are not sent)
- fct_campaign_performance: sent 300+100+300+100+200 = 1,000; conversions 9+3+18+6+4 = 40;
  revenue 450 + 150 + 1,080.50 + 360 + 200 = 2,240.50
- headline lift: the spring_sale/email 'treated' row: +2.5 pp (95% CI +0.4 to +4.6 pp), p = 0.030
- lifecycle flows: first seen→new 3, new→active 1, new→at_risk 1, active→at_risk 1,
  at_risk→churned 1, churned→reactivated 1
"""

from __future__ import annotations

from pathlib import Path

import duckdb

# customer ids the report must never show (it shows aggregates only)
CUSTOMER_IDS = ["cust-secret-0001", "cust-secret-0002", "cust-secret-0003"]

DDL = {
    "fct_messages": """
        message_key varchar, sync_key varchar, segment varchar, campaign varchar, channel varchar,
        variant varchar, customer_id varchar, content_version varchar, status varchar, skip_reason varchar,
        is_sent boolean, is_holdout boolean, planned_at timestamptz, sent_at timestamptz,
        exposed_at timestamptz, send_date date""",
    "fct_campaign_performance": """
        campaign varchar, variant varchar, channel varchar, send_date date, sent bigint, failed bigint,
        delivered bigint, bounced bigint, hard_bounced bigint, unique_opens bigint, bot_opens bigint,
        unique_clicks bigint, unsubscribes bigint, complaints bigint, conversions bigint,
        revenue decimal(18, 2), cost decimal(18, 4), delivery_rate double, delivery_failure_rate double,
        bounce_rate double, open_rate double, click_rate double, click_to_open_rate double,
        unsubscribe_rate double, complaint_rate double, conversion_rate double,
        revenue_per_message double, roi double""",
    "fct_attribution": """
        order_id varchar, customer_id varchar, ordered_at timestamptz, order_amount decimal(18, 2),
        touchpoint_id varchar, touched_at timestamptz, channel varchar, campaign varchar, touch_type varchar,
        touch_position integer, path_length integer, model varchar, weight double,
        attributed_revenue double""",
    "channel_roi": """
        channel varchar, model varchar, period varchar, period_start date, period_end date, period_days integer,
        conversions double, attributed_revenue double, messages_sent bigint, spend double, sending_fees double,
        cost double, cost_basis varchar, roi double, roas double, cost_per_conversion double""",
    "experiment_results": """
        campaign varchar, channel varchar, arm varchar, arm_type varchar, reach bigint, converters bigint,
        conversion_rate double, conversion_rate_ci_low double, conversion_rate_ci_high double,
        revenue double, revenue_per_recipient double, baseline_arm varchar, absolute_lift double,
        absolute_lift_ci_low double, absolute_lift_ci_high double, relative_lift double,
        relative_lift_ci_low double, relative_lift_ci_high double, z_score double, p_value double,
        is_significant boolean, is_winner boolean, confidence_level double""",
    "customer_lifecycle_history": """
        customer_id varchar, stage varchar, entered_on date, exited_on date, previous_stage varchar,
        spell_number integer, is_current boolean""",
    "attribution_models": "model varchar, label varchar, display_order integer",
}

# marts.attribution_models as dbt publishes it; the report reads its order and labels from here
ATTRIBUTION_MODELS = [
    ("first_touch", "First touch"),
    ("last_touch", "Last touch"),
    ("linear", "Linear"),
    ("time_decay", "Time decay"),
    ("position_based", "Position based (40/20/40)"),
    ("data_driven", "Data-driven (Markov)"),
]

PERFORMANCE = [
    # campaign, variant, channel, send_date, sent, delivered, opens, clicks, conversions, revenue
    ("spring_sale", "A", "email", "2026-03-01", 300, 290, 120, 30, 9, 450.00),
    ("spring_sale", "A", "email", "2026-03-02", 100, 98, 40, 10, 3, 150.00),
    ("spring_sale", "B", "email", "2026-03-01", 300, 295, 150, 60, 18, 1080.50),
    ("spring_sale", "B", "email", "2026-03-02", 100, 99, 50, 20, 6, 360.00),
    # 7 "opens" on SMS: the demo's push and SMS report opens too; only email opens are shown
    ("winback", "all", "sms", "2026-03-02", 200, 196, 7, 24, 4, 200.00),
]

EXPERIMENT = [  # spring_sale · email
    # arm, arm_type, reach, converters, rate, lift, lift_lo, lift_hi, relative, p, significant, winner
    ("holdout", "holdout", 100, 2, 0.02, None, None, None, None, None, None, False),
    ("A", "variant", 400, 12, 0.03, 0.010, -0.018, 0.038, 0.5, 0.47, False, False),
    ("B", "variant", 400, 24, 0.06, 0.040, 0.009, 0.071, 2.0, 0.012, True, True),
    ("treated", "treated", 800, 36, 0.045, 0.025, 0.004, 0.046, 1.25, 0.030, True, False),
]

# channel_roi as the model computes it (docs/attribution.md), for two models and two periods.
# all_time carries fct_attribution's credit below (o1 100.00 split email/paid_search, o2 50.00 sms)
# plus one unattributed order of 40.00; recent is the last 30 days, when o1 was not yet placed.
PERIODS = {"recent": ("2026-02-01", "2026-03-02", 30), "all_time": ("2025-01-01", "2026-03-02", 426)}
ROI_INPUTS = [
    # period, channel, model, conversions, revenue, messages sent, spend, sending fees
    ("all_time", "email", "data_driven", 0.7, 70.0, 800, 0.0, 0.80),
    ("all_time", "paid_search", "data_driven", 0.3, 30.0, 0, 60.0, 0.0),
    ("all_time", "sms", "data_driven", 1.0, 50.0, 200, 0.0, 1.50),
    ("all_time", "unattributed", "data_driven", 1.0, 40.0, 0, 0.0, 0.0),
    ("all_time", "email", "last_touch", 0.0, 0.0, 800, 0.0, 0.80),
    ("all_time", "paid_search", "last_touch", 1.0, 100.0, 0, 60.0, 0.0),
    ("all_time", "sms", "last_touch", 1.0, 50.0, 200, 0.0, 1.50),
    ("all_time", "unattributed", "last_touch", 1.0, 40.0, 0, 0.0, 0.0),
    ("recent", "sms", "data_driven", 1.0, 50.0, 200, 0.0, 1.50),
    ("recent", "paid_search", "data_driven", 0.0, 0.0, 0, 30.0, 0.0),
    ("recent", "email", "data_driven", 0.0, 0.0, 800, 0.0, 0.80),
    ("recent", "sms", "last_touch", 1.0, 50.0, 200, 0.0, 1.50),
    ("recent", "paid_search", "last_touch", 0.0, 0.0, 0, 30.0, 0.0),
    ("recent", "email", "last_touch", 0.0, 0.0, 800, 0.0, 0.80),
]


def roi_rows() -> list[tuple]:
    """ROI_INPUTS with the derived columns, by channel_roi's rules: ROI and ROAS only with spend."""
    rows = []
    for period, channel, model, conversions, revenue, messages, spend, fees in ROI_INPUTS:
        cost = spend + fees
        basis = "spend" if spend > 0 else ("sending_fees_only" if fees > 0 else "none")
        start, end, days = PERIODS[period]
        rows.append(
            (
                channel,
                model,
                period,
                start,
                end,
                days,
                conversions,
                revenue,
                messages,
                spend,
                fees,
                cost,
                basis,
                (revenue - cost) / cost if basis == "spend" else None,
                revenue / cost if basis == "spend" else None,
                cost / conversions if cost > 0 and conversions > 0 else None,
            )
        )
    return rows


# order o1 (100.00): email click then paid_search session; order o2 (50.00): one sms click
O1_WEIGHTS = {  # model: (email weight, paid_search weight)
    "first_touch": (1.0, 0.0),
    "last_touch": (0.0, 1.0),
    "linear": (0.5, 0.5),
    "time_decay": (0.4, 0.6),
    "position_based": (0.5, 0.5),
    "data_driven": (0.7, 0.3),
}

LIFECYCLE = [
    # customer, stage, entered_on, exited_on, previous_stage, spell, is_current
    (0, "new", "2025-01-01", "2025-02-01", None, 1, False),
    (0, "active", "2025-02-01", "2025-09-01", "new", 2, False),
    (0, "at_risk", "2025-09-01", None, "active", 3, True),
    (1, "new", "2025-01-05", "2025-04-05", None, 1, False),
    (1, "at_risk", "2025-04-05", "2025-07-05", "new", 2, False),
    (1, "churned", "2025-07-05", "2026-01-10", "at_risk", 3, False),
    (1, "reactivated", "2026-01-10", None, "churned", 4, True),
    (2, "new", "2026-02-20", None, None, 1, True),
]


# winback · sms has no holdout: no lift, no significance (as experiment_results writes it); its
# treated arm reaches more people than spring_sale's, yet the header must show spring_sale's lift
NO_HOLDOUT_ARM = ("winback", "sms", "treated", "treated", 900, 9, 0.01)


def create_tables(con: duckdb.DuckDBPyConnection, tables: list[str] | None = None) -> None:
    con.execute("create schema if not exists marts")
    for name in list(DDL) if tables is None else tables:
        con.execute(f"create table marts.{name} ({DDL[name]})")


def write_report_marts(path: Path) -> Path:
    """A warehouse with every table the report reads, filled with the rows above."""
    con = duckdb.connect(str(path))
    try:
        con.execute("set TimeZone = 'UTC'")
        create_tables(con)
        for (
            campaign,
            variant,
            channel,
            day,
            sent,
            delivered,
            opens,
            clicks,
            conversions,
            revenue,
        ) in PERFORMANCE:
            con.execute(
                "insert into marts.fct_campaign_performance (campaign, variant, channel, send_date, sent, "
                "failed, delivered, bounced, hard_bounced, unique_opens, bot_opens, unique_clicks, unsubscribes, "
                "complaints, conversions, revenue, cost) values (?, ?, ?, ?, ?, 0, ?, ?, 0, ?, 3, ?, 1, 0, ?, ?, ?)",
                [
                    campaign,
                    variant,
                    channel,
                    day,
                    sent,
                    delivered,
                    sent - delivered,
                    opens,
                    clicks,
                    conversions,
                    revenue,
                    sent * 0.001,
                ],
            )
        # messages: 400 A + 400 B sent, 100 holdout, 20 skipped (spring_sale); 200 winback sms sent
        for campaign, channel, variant, status, skip_reason, n in [
            ("spring_sale", "email", "A", "sent", None, 400),
            ("spring_sale", "email", "B", "sent", None, 400),
            ("spring_sale", "email", "A", "holdout", None, 100),
            ("spring_sale", "email", "B", "skipped", "no_consent", 20),
            ("winback", "sms", None, "sent", None, 200),
        ]:
            con.execute(
                "insert into marts.fct_messages select uuid()::varchar, 'sync', 'segment', ?, ?, ?, "
                "?, 'v1', ?, ?, ? = 'sent', ? = 'holdout', timestamptz '2026-03-01 09:00:00+00', null, null, "
                "date '2026-03-01' from range(?)",
                [campaign, channel, variant, CUSTOMER_IDS[0], status, skip_reason, status, status, n],
            )
        for arm, arm_type, reach, conv, rate, lift, lo, hi, rel, p, sig, win in EXPERIMENT:
            con.execute(
                "insert into marts.experiment_results values ('spring_sale', 'email', ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "?, ?, ?, ?, ?, null, null, null, ?, ?, ?, 0.95)",
                [
                    arm,
                    arm_type,
                    reach,
                    conv,
                    rate,
                    rate - 0.01,
                    rate + 0.01,
                    conv * 50.0,
                    conv * 50.0 / reach,
                    None if arm_type == "holdout" else "holdout",
                    lift,
                    lo,
                    hi,
                    rel,
                    p,
                    sig,
                    win,
                ],
            )
        campaign, channel, arm, arm_type, reach, conv, rate = NO_HOLDOUT_ARM
        con.execute(
            "insert into marts.experiment_results (campaign, channel, arm, arm_type, reach, converters, "
            "conversion_rate, conversion_rate_ci_low, conversion_rate_ci_high, is_winner, confidence_level) "
            "values (?, ?, ?, ?, ?, ?, ?, ?, ?, false, 0.95)",
            [campaign, channel, arm, arm_type, reach, conv, rate, rate - 0.005, rate + 0.005],
        )
        con.executemany(f"insert into marts.channel_roi values ({', '.join(['?'] * 16)})", roi_rows())
        con.executemany(
            "insert into marts.attribution_models values (?, ?, ?)",
            [(model, label, i) for i, (model, label) in enumerate(ATTRIBUTION_MODELS, start=1)],
        )
        for model, (w_email, w_paid) in O1_WEIGHTS.items():
            for order_id, amount, touch_id, channel, position, length, weight in [
                ("o1", 100.0, "t1", "email", 1, 2, w_email),
                ("o1", 100.0, "t2", "paid_search", 2, 2, w_paid),
                ("o2", 50.0, "t3", "sms", 1, 1, 1.0),
            ]:
                con.execute(
                    "insert into marts.fct_attribution values (?, ?, timestamptz '2026-03-02 12:00:00+00', ?, ?, "
                    "timestamptz '2026-03-01 12:00:00+00', ?, 'spring_sale', 'click', ?, ?, ?, ?, ?)",
                    [
                        order_id,
                        CUSTOMER_IDS[1],
                        amount,
                        touch_id,
                        channel,
                        position,
                        length,
                        model,
                        weight,
                        weight * amount,
                    ],
                )
        for customer, stage, entered, exited, previous, spell, current in LIFECYCLE:
            con.execute(
                "insert into marts.customer_lifecycle_history values (?, ?, ?, ?, ?, ?, ?)",
                [CUSTOMER_IDS[customer], stage, entered, exited, previous, spell, current],
            )
    finally:
        con.close()
    return path


def write_empty_warehouse(path: Path, with_tables: list[str] | None = None) -> Path:
    """A warehouse without engagement data: the listed tables exist but are empty, the rest are missing."""
    con = duckdb.connect(str(path))
    try:
        create_tables(con, with_tables or [])
    finally:
        con.close()
    return path
