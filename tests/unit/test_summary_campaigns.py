"""The summary's campaign results, read from the engagement and experiment marts when they exist."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from activation.ledger import ensure_schema
from tideline.reporting.summary import _activation_lines, _campaign_lines


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


def _sync_run(con, sync_id: str, key: str, started: str, audience: int, sent: int, skipped: dict) -> None:
    con.execute(
        "insert into tideline_sync.sync_runs (sync_id, sync_key, segment, destination, mode, dry_run, started_at, "
        "segment_rows, sent, skipped_by_reason, failed, dead_letters, unknown, status) "
        "values (?, ?, 'win_back', 'email', 'message', false, ?, ?, ?, ?, 0, 0, 0, 'done')",
        [sync_id, key, started, audience, sent, json.dumps(skipped)],
    )


def _ledger(con, sync_id: str, key: str, status: str, n: int) -> None:
    con.execute(
        "insert into tideline_sync.delivery_log (idempotency_key, sync_key, sync_id, customer_id, action, status, "
        "channel, recorded_at) select uuid(), ?, ?, 'c' || i, 'insert', ?, 'email', now()::timestamp from range(?) t(i)",
        [key, sync_id, status, n],
    )


def test_a_rerun_that_sends_nothing_new_says_what_was_sent_before(tmp_path: Path) -> None:
    """The first run sent 12 of an audience of 15 (3 without consent); the rerun sends 0 because
    the ledger already holds those 12: it reads '0 now, 12 before', not a failed send."""
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ensure_schema(con)
    key = "win_back__email"
    _sync_run(con, "run-1", key, "2026-11-23 09:00:00", 15, 12, {"no_consent": 3})
    _ledger(con, "run-1", key, "sent", 12)
    _ledger(con, "run-1", key, "skipped", 3)
    _sync_run(con, "run-2", key, "2026-11-24 09:00:00", 16, 0, {"no_consent": 3})
    _ledger(con, "run-2", key, "skipped", 1)
    _ledger(con, "run-2", "other__sms", "sent", 5)  # another activation's messages are not this one's

    lines = _activation_lines(con)

    header = next(line for line in lines if line.startswith("Activation"))
    assert header.split()[3:8] == ["audience", "sent", "now", "sent", "before"]
    row = next(line for line in lines if line.strip().startswith(key))
    assert row.split() == [key, "16", "0", "12", "0", "no_consent", "3"]
    assert (
        "sent before: by earlier runs of the same activation (delivery ledger), never sent again" in lines[-1]
    )


def test_unknown_deliveries_are_shown_until_someone_decides(tmp_path: Path) -> None:
    """Records an earlier run left `unknown` (handed over, no answer) stay on the summary, whichever
    run left them, until they are reconciled: the latest run itself left none."""
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ensure_schema(con)
    key = "win_back__email"
    _sync_run(con, "run-1", key, "2026-11-23 09:00:00", 15, 10, {})
    _ledger(con, "run-1", key, "sent", 10)
    _ledger(con, "run-1", key, "unknown", 2)
    _sync_run(con, "run-2", key, "2026-11-24 09:00:00", 15, 0, {})

    row = next(line for line in _activation_lines(con) if line.strip().startswith(key))
    assert row.split()[:5] == [key, "15", "0", "10", "0"]
    assert row.endswith("unknown 2 (no answer yet: see the unknown_deliveries check)")


def test_no_relative_lift_when_the_holdout_converted_no_one() -> None:
    con = duckdb.connect()
    con.execute("create schema marts")
    con.execute(
        """create table marts.experiment_results as select * from (values
           ('win_back', 'email', 'holdout', 'holdout', 29, 0.0, null, null, null, null, null, false, 0.95),
           ('win_back', 'email', 'treated', 'treated', 334, 0.174, 0.174, 0.051, 0.218, null, 0.014, false, 0.95))
           t(campaign, channel, arm, arm_type, reach, conversion_rate, absolute_lift, absolute_lift_ci_low,
             absolute_lift_ci_high, relative_lift, p_value, is_winner, confidence_level)"""
    )
    assert (
        "  incremental lift vs holdout: +17.4 pts (95% CI +5.1 pts to +21.8 pts), p = 0.014"
        in _campaign_lines(con)
    )
