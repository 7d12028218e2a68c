"""The launch marts on the engagement marts' hand-built ledger (tests/dbt/test_engagement_marts.py),
with a few runs and decisions of staged launches added; every expected value worked out by hand.

launch_gate_rates, activation spring:email, content v1 (m1, m2, m3 sent; m5 failed; m4 holdout,
left out): sent 3, failed 1, bounced 1 (m3, hard), delivered 3 - 1 = 2; human opens 1 (m1: e1 is a
bot, e2 human), human clicks 1 (m1; m2's click is a bot's), unsubscribes 1 (m2), complaints 1 (m2).
  delivery_rate   2 of 3      open_rate 1 of 2      click_rate 1 of 2
  unsubscribe_rate 1 of 2     complaint_rate 1 of 2  bounce_rate 1 of 3
news:sms v1 (m7 sent, delivered): delivery 1 of 1, clicks 0 of 1, and no open rate (SMS has no
pixel: successes, sample and rate null).

launch_audit: the four runs of the engagement fixture plus two of spring:email written here:
  run-a  2025-03-06 10:00 launched_by schedule:spring_daily, stage awaiting_approval, sent 0
  run-b  2025-03-07 10:00 launched_by cli:maria,             stage full,              sent 40
an approval of spring:email v1 by dana at 2025-03-06 12:00 (after run-a, before run-b), and an
approval of v2 at 2025-03-05 (another content version: approves nothing of v1). So run-a has no
approver and run-b has dana; runs recorded without a launcher read 'unknown'. A dry run is left out.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from activation.launches.spec import GATE_METRICS
from tests.dbt.test_engagement_marts import AS_OF, write_landing_zone, write_ledger
from tests.helpers import Warehouse, build_warehouse

pytestmark = pytest.mark.slow  # every test reads a warehouse built by dbt


def write_launches(warehouse: Path) -> None:
    con = duckdb.connect(str(warehouse))
    try:
        for sync_id, started, by, stage, sent, dry in (
            ("run-a", datetime(2025, 3, 6, 10), "schedule:spring_daily", "awaiting_approval", 0, False),
            ("run-b", datetime(2025, 3, 7, 10), "cli:maria", "full", 40, False),
            ("run-dry", datetime(2025, 3, 7, 11), "cli:maria", "full", 0, True),
        ):
            con.execute(
                """insert into tideline_sync.sync_runs (sync_id, sync_key, segment, destination, mode, dry_run,
                       started_at, segment_rows, sent, status, launched_by, campaign, content_version,
                       launch_stage)
                   values (?, 'spring:email', 'spring_segment', 'email', 'message', ?, ?, 120, ?, 'done', ?,
                           'spring', 'v1', ?)""",
                [sync_id, dry, started, sent, by, stage],
            )
        for version, at, by in (
            ("v1", datetime(2025, 3, 6, 12), "dana"),
            ("v2", datetime(2025, 3, 5), "lee"),
        ):
            con.execute(
                """insert into tideline_sync.launch_decisions (decision_id, sync_key, campaign, content_version,
                       stage, decision, decided_at, decided_by)
                   values (?, 'spring:email', 'spring', ?, 'approval', 'approved', ?, ?)""",
                [f"d-{version}", version, at, by],
            )
    finally:
        con.close()


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    root = tmp_path_factory.mktemp("launches")
    write_landing_zone(root / "raw")
    write_ledger(root / "warehouse.duckdb")
    write_launches(root / "warehouse.duckdb")
    return build_warehouse(root / "raw", root / "warehouse.duckdb", AS_OF)


def test_gate_rates_count_the_launchs_messages_like_the_campaign_report(warehouse: Warehouse) -> None:
    rows = warehouse.query(
        "select sync_key, content_version, metric, successes, sample, rate from marts.launch_gate_rates "
        "order by sync_key, metric"
    )
    got = {(r[0], r[2]): (r[3], r[4], r[5]) for r in rows}
    assert {m for s, m in got if s == "spring:email"} == {"delivery_rate", *GATE_METRICS}
    assert got[("spring:email", "delivery_rate")] == (2, 3, pytest.approx(2 / 3))
    assert got[("spring:email", "open_rate")] == (1, 2, 0.5)
    assert got[("spring:email", "click_rate")] == (1, 2, 0.5)
    assert got[("spring:email", "unsubscribe_rate")] == (1, 2, 0.5)
    assert got[("spring:email", "complaint_rate")] == (1, 2, 0.5)
    assert got[("spring:email", "bounce_rate")] == (1, 3, pytest.approx(1 / 3))
    assert got[("news:sms", "delivery_rate")] == (1, 1, 1.0)
    assert got[("news:sms", "click_rate")] == (0, 1, 0.0)
    assert got[("news:sms", "open_rate")] == (None, None, None)
    assert {r[1] for r in rows} == {"v1"}
    assert {r[0] for r in rows} == {"spring:email", "news:sms"}  # upsert syncs send no messages


def test_launch_audit_says_who_sent_what_to_how_many_and_who_approved(warehouse: Warehouse) -> None:
    rows = warehouse.query(
        "select sync_id, launched_by, launch_stage, audience, sent, approved_by, approved_at "
        "from marts.launch_audit where sync_key = 'spring:email' order by started_at, sync_id"
    )
    assert rows == [
        ("run-spring:email", "unknown", None, None, None, None, None),
        ("run-a", "schedule:spring_daily", "awaiting_approval", 120, 0, None, None),
        ("run-b", "cli:maria", "full", 120, 40, "dana", datetime(2025, 3, 6, 12)),
    ]
    assert warehouse.query("select count(*) from marts.launch_audit")[0][0] == 6  # 4 of the fixture + 2
