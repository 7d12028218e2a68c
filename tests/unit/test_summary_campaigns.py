"""The summary's campaign results, read from the engagement and experiment marts when they exist."""

from __future__ import annotations

from pathlib import Path

import duckdb

from orchestration.summary import _campaign_lines


def test_no_marts_no_section() -> None:
    con = duckdb.connect()
    assert _campaign_lines(con) == []


def test_campaign_rows_and_experiment_headline(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create schema marts")
    con.execute(
        """create table marts.fct_campaign_performance as select * from (values
           ('win_back', 'A', 'email', date '2026-11-23', 60, 59, 30, 6, 2, 80.0),
           ('win_back', 'A', 'email', date '2026-11-24', 40, 39, 19, 4, 3, 170.0),
           ('win_back', 'all', 'sms', date '2026-11-23', 50, 0, 0, 0, 1, 30.0))
           t(campaign, variant, channel, send_date, sent, delivered, unique_opens, unique_clicks,
             conversions, revenue)"""
    )
    con.execute(
        """create table marts.experiment_results as select * from (values
           ('win_back', 'email', 'A', 'variant', 100, 0.05, 0.02, -0.01, 0.05, 0.667, 0.2, false, 0.95),
           ('win_back', 'email', 'B', 'variant', 100, 0.18, 0.15, 0.10, 0.20, 5.0, 0.0004, true, 0.95),
           ('win_back', 'email', 'holdout', 'holdout', 20, 0.03, null, null, null, null, null, false, 0.95),
           ('win_back', 'email', 'treated', 'treated', 200, 0.115, 0.085, 0.04, 0.13, 2.833, 0.012, false, 0.95))
           t(campaign, channel, arm, arm_type, reach, conversion_rate, absolute_lift, absolute_lift_ci_low,
             absolute_lift_ci_high, relative_lift, p_value, is_winner, confidence_level)"""
    )
    lines = _campaign_lines(con)
    text = "\n".join(lines)
    # A over both days: sent 100, delivered 98, opens 49 (50.0% of delivered), clicks 10 (10.2%),
    # 5 conversions, revenue 250; SMS reports no delivery, so its rates are of sent (0 of 50)
    a = next(line for line in lines if line.strip().startswith("win_back") and " A " in line)
    assert a.split() == ["win_back", "A", "email", "100", "50.0%", "10.2%", "5", "250.00"]
    sms = next(line for line in lines if " sms " in line)
    assert sms.split() == ["win_back", "all", "sms", "50", "-", "0.0%", "1", "30.00"]  # no open pixel
    # the headline is the treated arm against the holdout: +8.5 points (4.0 to 13.0), +283%
    assert (
        "incremental lift vs holdout: +8.5 pts (95% CI +4.0 pts to +13.0 pts), relative +283%, p = 0.012"
        in text
    )
    assert "A 5.0% of 100, B 18.0% of 100, holdout 3.0% of 20, treated 11.5% of 200 converted" in text
    assert "winner: B" in text
