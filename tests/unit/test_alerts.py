"""The alert checks table over campaign_alert_rates rows, worked out by hand; the alerts config; the
sent log. The rates themselves are computed by dbt (campaign_alert_rates, whose unit tests derive
these same figures from counts); here they are given as the mart has them."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from activation.alerts import RULES, Alert, alert_checks, alert_key, already_sent, evaluate, record_sent
from activation.config import (
    AlertsConfig,
    ConfigError,
    RateThreshold,
    SpikeThreshold,
    alerts_from_raw,
    load_config,
)

DAY = dt.date(2026, 3, 10)
DESTINATIONS = {"staff_alerts": {"type": "webhook", "url": "http://127.0.0.1:1/a"}, "crm": {"type": "crm"}}


def healthy(campaign: str, **columns) -> dict:
    """A row of marts.campaign_alert_rates for the one-day window DAY: 1000 attempted and delivered,
    30% opens, no failures, complaints or unsubscribes, no history (no check fires); `columns`
    override the mart's columns."""
    return {
        "campaign": campaign,
        "channel": "email",
        "variant": "all",
        "window_start": DAY,
        "window_end": DAY,
        "window_days": 1,
        "trailing_days": 7,
        "attempted": 1000,
        "failed_or_bounced": 0,
        "delivered": 1000,
        "unique_opens": 300,
        "unsubscribes": 0,
        "complaints": 0,
        "delivery_failure_rate": 0.0,
        "open_rate": 0.3,
        "unsubscribe_rate": 0.0,
        "complaint_rate": 0.0,
        "all_variants_unsubscribes": 0,
        "all_variants_delivered": 1000,
        "all_variants_unsubscribe_rate": 0.0,
        "trailing_unsubscribe_rate": 0.0,
        **columns,
    }


def checks(config: AlertsConfig | None = None) -> list:
    return alert_checks(config or AlertsConfig())


def by_check(alerts: list[Alert], check: str) -> list[Alert]:
    return [a for a in alerts if a.check == check]


def test_delivery_failure_rate_alerts_at_six_percent_not_at_five() -> None:
    # failed_or_bounced / attempted: win_back (3 + 3) / (97 + 3) = 0.06 > 0.05;
    # promo (2 + 3) / (98 + 2) = 0.05, not above 0.05
    rows = [
        healthy("win_back", attempted=100, failed_or_bounced=6, delivery_failure_rate=0.06),
        healthy("promo", attempted=100, failed_or_bounced=5, delivery_failure_rate=0.05),
    ]
    alerts = evaluate(rows, checks())
    assert [(a.check, a.campaign) for a in alerts] == [("delivery_failure_rate", "win_back")]
    alert = alerts[0]
    assert alert.value == pytest.approx(0.06)
    assert alert.threshold == 0.05
    assert (alert.channel, alert.variant, alert.day) == ("email", "all", DAY)
    assert alert.message == (
        "delivery failure rate 6.00% is above 5.00% for campaign win_back, channel email, variant all "
        "on 2026-03-10 (6 of 100 attempted messages failed or bounced)"
    )


def test_open_rate_below_ten_percent_needs_the_minimum_sample() -> None:
    rows = [
        healthy("low", delivered=100, unique_opens=9, open_rate=0.09),  # < 0.10, 100 delivered >= 100
        healthy("small", delivered=99, unique_opens=5, open_rate=5 / 99),  # 0.0505 but only 99 delivered
        healthy("edge", delivered=200, unique_opens=20, open_rate=0.10),  # not below 0.10
    ]
    alerts = by_check(evaluate(rows, checks()), "open_rate")
    assert [(a.campaign, a.value, a.threshold) for a in alerts] == [("low", 0.09, 0.10)]

    no_minimum = replace(AlertsConfig(), open_rate=RateThreshold(0.10, min_sample=0))
    alerts = by_check(evaluate(rows, checks(no_minimum)), "open_rate")
    assert [a.campaign for a in alerts] == ["low", "small"]
    assert alerts[1].value == pytest.approx(5 / 99)


def test_a_rate_the_mart_leaves_null_is_not_judged() -> None:
    # the mart has no open rate for SMS (no open pixel): 14 of 200 "opens" are its clicks
    rows = [
        healthy("sms_promo", channel="sms", delivered=200, unique_opens=14, open_rate=None),
        healthy("mail", channel="email", delivered=200, unique_opens=14, open_rate=0.07),  # < 0.10
    ]
    alerts = by_check(evaluate(rows, checks()), "open_rate")
    assert [(a.campaign, a.channel) for a in alerts] == [("mail", "email")]


def test_open_rate_is_per_variant() -> None:
    rows = [
        healthy("ab", variant="a", delivered=150, unique_opens=30, open_rate=0.20),
        healthy("ab", variant="b", delivered=150, unique_opens=12, open_rate=0.08),  # < 0.10
    ]
    alerts = evaluate(rows, checks())
    assert [(a.check, a.variant, a.value) for a in alerts] == [("open_rate", "b", 0.08)]


def spike(campaign: str, together: int, trailing: float, variant: str = "all", **columns) -> dict:
    """A row whose campaign × channel had `together` unsubscribes of 1000 delivered in the window
    (every variant together) and the trailing rate `trailing` before it."""
    values = {
        "variant": variant,
        "all_variants_unsubscribes": together,
        "all_variants_unsubscribe_rate": together / 1000,
        "trailing_unsubscribe_rate": trailing,
    }
    return healthy(campaign, **(values | columns))


def test_unsubscribe_spike_against_the_trailing_rate() -> None:
    # spiky: trailing 7 x 2 / 7 x 1000 = 0.002, limit max(0.005, 3 x 0.002) = 0.006, window 7 / 1000 = 0.007
    # steady: trailing 0.002, window 2 / 1000 = 0.002, under 0.006
    # noisy: trailing 4 / 1000 = 0.004, limit 0.012; 10 / 1000 = 0.010 is above the floor but no spike
    # split: two variants together, 4 / 500 + 3 / 500 = 7 / 1000 = 0.007, no history: limit = floor
    #   0.005; one alert for the campaign × channel, as variant 'all'
    # ancient: its only history is outside the trailing days (trailing 0): limit = floor, 0.006 > 0.005
    rows = [
        spike("spiky", 7, 0.002),
        spike("steady", 2, 0.002),
        spike("noisy", 10, 0.004),
        spike("split", 7, 0.0, variant="a", unsubscribes=4, delivered=500, unsubscribe_rate=0.008),
        spike("split", 7, 0.0, variant="b", unsubscribes=3, delivered=500, unsubscribe_rate=0.006),
        spike("ancient", 6, 0.0),
    ]
    alerts = by_check(evaluate(rows, checks()), "unsubscribe_spike")
    found = {a.campaign: (a.variant, round(a.value, 6), round(a.threshold, 6)) for a in alerts}
    assert found == {
        "ancient": ("all", 0.006, 0.005),
        "spiky": ("all", 0.007, 0.006),
        "split": ("all", 0.007, 0.005),
    }
    assert len(alerts) == 3
    assert next(a for a in alerts if a.campaign == "spiky").message == (
        "unsubscribe rate 0.70% is above 0.60% for campaign spiky, channel email (all variants) on "
        "2026-03-10 (7 unsubscribes of 1000 delivered; the previous 7 days: 0.20%, limit max(0.50%, 3 x 0.20%))"
    )


def test_unsubscribe_spike_needs_enough_delivered_and_a_floor() -> None:
    rows = [
        spike("tiny", 5, 0.0, all_variants_delivered=50, all_variants_unsubscribe_rate=0.10),  # 50 < 100
        spike("at_floor", 5, 0.0),  # 5 / 1000 = 0.005: not above the floor
    ]
    assert by_check(evaluate(rows, checks()), "unsubscribe_spike") == []
    lenient = replace(AlertsConfig(), unsubscribe_spike=SpikeThreshold(min_sample=0))
    assert [a.campaign for a in by_check(evaluate(rows, checks(lenient)), "unsubscribe_spike")] == ["tiny"]


def test_complaint_rate_above_one_in_a_thousand() -> None:
    rows = [
        healthy("spam", complaints=2, complaint_rate=0.002),  # > 0.001
        healthy("fine", complaints=1, complaint_rate=0.001),  # not above
    ]
    alerts = evaluate(rows, checks())
    assert [(a.check, a.campaign, a.value) for a in alerts] == [("complaint_rate", "spam", 0.002)]


def test_an_alert_is_dated_by_the_window_the_mart_covers() -> None:
    # a two-day window (dbt var alert_window_days: 2) summed 12 of 200: 0.06
    yesterday = DAY - dt.timedelta(days=1)
    row = healthy(
        "c",
        window_start=yesterday,
        window_days=2,
        attempted=200,
        failed_or_bounced=12,
        delivery_failure_rate=0.06,
    )
    alerts = evaluate([row], checks())
    assert [(a.check, a.value, a.day) for a in alerts] == [("delivery_failure_rate", 0.06, DAY)]
    assert f"from {yesterday} to {DAY}" in alerts[0].message


def test_disabled_checks_and_empty_input() -> None:
    rows = [healthy("spam", complaints=5, complaint_rate=0.005)]
    off = replace(AlertsConfig(), complaint_rate=RateThreshold(0.001, enabled=False))
    assert evaluate(rows, checks(off)) == []
    assert "complaint_rate" not in [c.rule.check for c in checks(off)]
    assert evaluate([], checks()) == []


def test_the_checks_table_reads_columns_the_mart_documents(dbt_manifest: Path) -> None:
    """Every column a check reads is a documented column of marts.campaign_alert_rates."""
    manifest = json.loads(dbt_manifest.read_text())
    [mart] = [n for n in manifest["nodes"].values() if n["name"] == "campaign_alert_rates"]
    read = {"campaign", "channel", "variant", "window_start", "window_end", "window_days", "trailing_days"}
    for rule in RULES:
        read |= {rule.column, rule.count, rule.sample, *([rule.relative_to] if rule.relative_to else [])}
    assert read - set(mart["columns"]) == set()
    assert [(c.rule.check, c.threshold, c.min_sample) for c in checks()] == [
        ("delivery_failure_rate", 0.05, 0),
        ("open_rate", 0.10, 100),
        ("unsubscribe_spike", 0.005, 100),
        ("complaint_rate", 0.001, 0),
    ]


@pytest.mark.parametrize("rule", [r for r in RULES if r.relative_to is None], ids=lambda r: r.check)
def test_the_config_key_of_a_limit_says_the_direction_of_its_check(rule) -> None:
    """A check alerting above its threshold is configured with `max`, one alerting below with
    `min`: the parser's key and the table's direction cannot drift apart."""
    bound, other = ("max", "min") if rule.direction == "above" else ("min", "max")
    assert getattr(alerts_from_raw({rule.check: {bound: 0.25}}, DESTINATIONS), rule.check).limit == 0.25
    with pytest.raises(ConfigError, match=f"alerts.{rule.check} has unknown key"):
        alerts_from_raw({rule.check: {other: 0.25}}, DESTINATIONS)


def test_alert_key_is_stable_per_check_campaign_channel_variant_and_day() -> None:
    key = alert_key("open_rate", "c", "email", "a", DAY)
    assert key == alert_key("open_rate", "c", "email", "a", DAY)
    assert len(key) == 36 and key.count("-") == 4
    others = {
        alert_key("complaint_rate", "c", "email", "a", DAY),
        alert_key("open_rate", "d", "email", "a", DAY),
        alert_key("open_rate", "c", "sms", "a", DAY),
        alert_key("open_rate", "c", "email", "b", DAY),
        alert_key("open_rate", "c", "email", "a", DAY + dt.timedelta(days=1)),
    }
    assert key not in others and len(others) == 5


def test_the_sent_log_remembers_keys() -> None:
    con = duckdb.connect()
    alert = evaluate([healthy("spam", complaints=2, complaint_rate=0.002)], checks())[0]
    assert already_sent(con, [alert.idempotency_key]) == set()
    record_sent(con, [alert], "staff_alerts", dt.datetime(2026, 3, 11, tzinfo=dt.UTC))
    record_sent(con, [alert], "staff_alerts")  # a second insert of the same key is a no-op
    assert already_sent(con, [alert.idempotency_key, alert_key("x", "y", "z", "w", DAY)]) == {
        alert.idempotency_key
    }
    assert con.execute("select check_name, campaign, day from tideline_sync.alerts_sent").fetchall() == [
        ("complaint_rate", "spam", DAY)
    ]
    assert set(alert.fields()) == {
        "check",
        "campaign",
        "channel",
        "variant",
        "day",
        "value",
        "threshold",
        "message",
        "source",
    }


# --- config --------------------------------------------------------------------------------------------


def test_the_shipped_config_has_the_documented_thresholds() -> None:
    alerts = load_config().alerts
    assert alerts.destination == "staff_alerts"
    assert alerts.delivery_failure_rate == RateThreshold(0.05, 0)
    assert alerts.open_rate == RateThreshold(0.10, 100)
    assert alerts.unsubscribe_spike == SpikeThreshold(0.005, 3.0, 100)
    assert alerts.complaint_rate == RateThreshold(0.001, 0)


def test_a_config_without_alerts_gets_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "activation.yml"
    path.write_text("destinations: {}\n")
    assert load_config(path).alerts == AlertsConfig()


def test_partial_sections_keep_the_other_defaults() -> None:
    alerts = alerts_from_raw({"open_rate": {"min": 0.2}, "unsubscribe_spike": {"factor": 2}}, DESTINATIONS)
    assert alerts.open_rate == RateThreshold(0.2, 100)
    assert alerts.unsubscribe_spike == SpikeThreshold(0.005, 2.0, 100)
    assert alerts.delivery_failure_rate == RateThreshold(0.05, 0)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"open_rate": {"min": 10}}, "alerts.open_rate.min is a share in [0, 1] (0.05 is 5%), got 10"),
        (
            {"open_rate": {"max": 0.1}},
            "alerts.open_rate has unknown key(s) max (known: min, min_sample, enabled)",
        ),
        ({"complaint_rate": {"max": "0.1%"}}, "alerts.complaint_rate.max must be a number, got '0.1%'"),
        ({"unsubscribe_spike": {"factor": 0.5}}, "alerts.unsubscribe_spike.factor must be >= 1, got 0.5"),
        (
            {"window_days": 1},
            "alerts.window_days is no longer read here: the rates the alerts judge are computed in dbt "
            "(marts.campaign_alert_rates), over the days of the dbt var alert_window_days; set it in "
            "dbt_project/dbt_project.yml (vars:) and remove alerts.window_days from this file",
        ),
        (
            {"unsubscribe_spike": {"trailing_days": 7}},
            "alerts.unsubscribe_spike.trailing_days is no longer read here: the rates the alerts judge are "
            "computed in dbt (marts.campaign_alert_rates), over the days of the dbt var alert_trailing_days",
        ),
        (
            {"open_rate": {"min_sample": -1}},
            "alerts.open_rate.min_sample must be a whole number >= 0, got -1",
        ),
        ({"destination": "nowhere"}, "alerts.destination 'nowhere' is not a destination of this config"),
        ({"destination": "crm"}, "alerts.destination 'crm' must be a webhook destination, not 'crm'"),
        ({"thresholds": {}}, "alerts has unknown key(s) thresholds"),
        ({"open_rate": {"enabled": "no"}}, "alerts.open_rate.enabled must be true or false, got 'no'"),
        ([1], "alerts must be a mapping"),
    ],
)
def test_bad_alert_config_is_a_clear_error(raw, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        alerts_from_raw(raw, DESTINATIONS, where="activation.yml")
    assert message in str(err.value)
    assert str(err.value).startswith("activation.yml: ")
