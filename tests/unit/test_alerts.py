"""Alert thresholds over campaign-performance rows, worked out by hand; the alerts config; the sent log."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from activation.alerts import Alert, alert_key, already_sent, evaluate, record_sent
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


def row(
    campaign: str,
    *,
    day: dt.date = DAY,
    channel: str = "email",
    variant: str | None = "all",
    sent: int = 0,
    failed: int = 0,
    delivered: int = 0,
    bounced: int = 0,
    unique_opens: int = 0,
    unsubscribes: int = 0,
    complaints: int = 0,
) -> dict:
    return {
        "campaign": campaign,
        "variant": variant,
        "channel": channel,
        "send_date": day,
        "sent": sent,
        "failed": failed,
        "delivered": delivered,
        "bounced": bounced,
        "unique_opens": unique_opens,
        "unsubscribes": unsubscribes,
        "complaints": complaints,
        "open_rate": 0.99,  # the mart's own rate columns are not what is judged: counts are
    }


def healthy(campaign: str, **kw) -> dict:
    """1000 delivered, 30% opens, no failures, complaints or unsubscribes: no check fires."""
    values = {"sent": 1000, "delivered": 1000, "unique_opens": 300, **kw}
    return row(campaign, **values)


def by_check(alerts: list[Alert], check: str) -> list[Alert]:
    return [a for a in alerts if a.check == check]


def test_delivery_failure_rate_alerts_at_six_percent_not_at_five() -> None:
    # (failed + bounced) / (sent + failed): win_back (3 + 3) / (97 + 3) = 0.06 > 0.05;
    # promo (2 + 3) / (98 + 2) = 0.05, not above 0.05
    rows = [
        healthy("win_back", sent=97, failed=3, bounced=3, delivered=94, unique_opens=30),
        healthy("promo", sent=98, failed=2, bounced=3, delivered=95, unique_opens=30),
    ]
    alerts = evaluate(rows, replace(AlertsConfig(), open_rate=RateThreshold(0.10, min_sample=100)))
    assert [(a.check, a.campaign) for a in alerts] == [("delivery_failure_rate", "win_back")]
    alert = alerts[0]
    assert alert.value == pytest.approx(0.06)
    assert alert.threshold == 0.05
    assert (alert.channel, alert.variant, alert.day) == ("email", "all", DAY)
    assert "6.00% is above 5.00%" in alert.message and "6 of 100 attempted" in alert.message


def test_open_rate_below_ten_percent_needs_the_minimum_sample() -> None:
    rows = [
        healthy("low", delivered=100, unique_opens=9),  # 9 / 100 = 0.09 < 0.10, 100 delivered >= 100
        healthy("small", delivered=99, unique_opens=5),  # 5 / 99 = 0.0505 but only 99 delivered
        healthy("edge", delivered=200, unique_opens=20),  # 20 / 200 = 0.10: not below 0.10
    ]
    alerts = by_check(evaluate(rows, AlertsConfig()), "open_rate")
    assert [(a.campaign, a.value, a.threshold) for a in alerts] == [("low", 0.09, 0.10)]

    no_minimum = replace(AlertsConfig(), open_rate=RateThreshold(0.10, min_sample=0))
    alerts = by_check(evaluate(rows, no_minimum), "open_rate")
    assert [a.campaign for a in alerts] == ["low", "small"]
    assert alerts[1].value == pytest.approx(5 / 99)


def test_open_rate_is_judged_for_email_only() -> None:
    rows = [
        healthy("sms_promo", channel="sms", delivered=200, unique_opens=14),  # 0.07: SMS has no pixel
        healthy("mail", channel="email", delivered=200, unique_opens=14),  # 0.07 < 0.10
    ]
    alerts = by_check(evaluate(rows, AlertsConfig()), "open_rate")
    assert [(a.campaign, a.channel) for a in alerts] == [("mail", "email")]


def test_open_rate_is_per_variant() -> None:
    rows = [
        healthy("ab", variant="a", delivered=150, unique_opens=30),  # 0.20
        healthy("ab", variant="b", delivered=150, unique_opens=12),  # 0.08 < 0.10
    ]
    alerts = evaluate(rows, AlertsConfig())
    assert [(a.check, a.variant, a.value) for a in alerts] == [("open_rate", "b", 0.08)]


def _history(campaign: str, unsubscribes_per_day: int, days: int = 7) -> list[dict]:
    """`days` send days before DAY, 1000 delivered each, the same unsubscribes each day."""
    return [
        healthy(campaign, day=DAY - dt.timedelta(days=d), unsubscribes=unsubscribes_per_day)
        for d in range(1, days + 1)
    ]


def test_unsubscribe_spike_against_the_trailing_rate() -> None:
    # spiky: trailing 7 x 2 / 7 x 1000 = 0.002, limit max(0.005, 3 x 0.002) = 0.006, today 7 / 1000 = 0.007
    # steady: trailing 0.002, today 2 / 1000 = 0.002, under 0.006
    # noisy: trailing 4 / 1000 = 0.004, limit 0.012; today 10 / 1000 = 0.010 is above the floor but no spike
    # split: two variants together, 4 / 500 + 3 / 500 = 7 / 1000 = 0.007, no history: limit = floor 0.005
    # ancient: its only history is 9 days back, outside the 7 trailing days: limit = floor, 0.006 > 0.005
    rows = [
        *_history("spiky", 2),
        healthy("spiky", unsubscribes=7),
        *_history("steady", 2),
        healthy("steady", unsubscribes=2),
        *_history("noisy", 4),
        healthy("noisy", unsubscribes=10),
        healthy("split", variant="a", sent=500, delivered=500, unique_opens=150, unsubscribes=4),
        healthy("split", variant="b", sent=500, delivered=500, unique_opens=150, unsubscribes=3),
        healthy("ancient", day=DAY - dt.timedelta(days=9), unsubscribes=100),
        healthy("ancient", unsubscribes=6),
    ]
    alerts = by_check(evaluate(rows, AlertsConfig()), "unsubscribe_spike")
    found = {a.campaign: (a.variant, round(a.value, 6), round(a.threshold, 6)) for a in alerts}
    assert found == {
        "ancient": ("all", 0.006, 0.005),
        "spiky": ("all", 0.007, 0.006),
        "split": ("all", 0.007, 0.005),
    }
    assert "max(0.50%, 3 x 0.20%)" in next(a for a in alerts if a.campaign == "spiky").message


def test_unsubscribe_spike_needs_enough_delivered_and_a_floor() -> None:
    rows = [
        healthy("tiny", sent=50, delivered=50, unique_opens=20, unsubscribes=5),  # 0.10 but 50 < 100
        healthy("at_floor", unsubscribes=5),  # 5 / 1000 = 0.005: not above the floor
    ]
    assert by_check(evaluate(rows, AlertsConfig()), "unsubscribe_spike") == []
    lenient = replace(AlertsConfig(), unsubscribe_spike=SpikeThreshold(min_sample=0))
    assert [a.campaign for a in by_check(evaluate(rows, lenient), "unsubscribe_spike")] == ["tiny"]


def test_complaint_rate_above_one_in_a_thousand() -> None:
    rows = [healthy("spam", complaints=2), healthy("fine", complaints=1)]  # 0.002 > 0.001; 0.001 is not
    alerts = evaluate(rows, AlertsConfig())
    assert [(a.check, a.campaign, a.value) for a in alerts] == [("complaint_rate", "spam", 0.002)]


def test_only_the_latest_send_day_by_default_and_the_window_sums_counts() -> None:
    yesterday = DAY - dt.timedelta(days=1)
    rows = [
        healthy("c", day=yesterday, sent=100, delivered=88, unique_opens=30, bounced=12),  # 12% failures
        healthy("c", sent=100, delivered=100, unique_opens=30),  # 0% today
    ]
    assert evaluate(rows, AlertsConfig()) == []  # yesterday is outside a one-day window
    two_days = replace(AlertsConfig(), window_days=2)
    alerts = evaluate(rows, two_days)  # (0 + 12 + 0) / (200 + 0) = 0.06 over both days
    assert [(a.check, a.value, a.day) for a in alerts] == [("delivery_failure_rate", 0.06, DAY)]
    assert f"from {yesterday} to {DAY}" in alerts[0].message


def test_disabled_checks_and_empty_input() -> None:
    rows = [healthy("spam", complaints=5)]
    off = replace(AlertsConfig(), complaint_rate=RateThreshold(0.001, enabled=False))
    assert evaluate(rows, off) == []
    assert evaluate([], AlertsConfig()) == []


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
    alert = evaluate([healthy("spam", complaints=2)], AlertsConfig())[0]
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
    assert alerts.window_days == 1
    assert alerts.delivery_failure_rate == RateThreshold(0.05, 0)
    assert alerts.open_rate == RateThreshold(0.10, 100)
    assert alerts.unsubscribe_spike == SpikeThreshold(0.005, 3.0, 7, 100)
    assert alerts.complaint_rate == RateThreshold(0.001, 0)


def test_a_config_without_alerts_gets_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "activation.yml"
    path.write_text("destinations: {}\n")
    assert load_config(path).alerts == AlertsConfig()


def test_partial_sections_keep_the_other_defaults() -> None:
    alerts = alerts_from_raw({"open_rate": {"min": 0.2}, "unsubscribe_spike": {"factor": 2}}, DESTINATIONS)
    assert alerts.open_rate == RateThreshold(0.2, 100)
    assert alerts.unsubscribe_spike == SpikeThreshold(0.005, 2.0, 7, 100)
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
        ({"window_days": 0}, "alerts.window_days must be a whole number >= 1, got 0"),
        ({"unsubscribe_spike": {"factor": 0.5}}, "alerts.unsubscribe_spike.factor must be >= 1, got 0.5"),
        ({"unsubscribe_spike": {"trailing_days": 2.5}}, "trailing_days must be a whole number >= 1, got 2.5"),
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
