"""A live sync records its experiment design (activation.experiments), a dry run does not: the real
engine, planner and policies against a real HTTP sink on loopback."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from activation.engine import SyncEngine
from tests.integration.test_sync_engine import NOON, POLICIES, _binding, _destination, sink, warehouse  # noqa: F401


def _designs(con) -> list[tuple]:
    return con.execute(
        "select campaign, channel, content_version, arm, round(expected_share, 6), recorded_at "
        "from tideline_sync.experiment_designs order by recorded_at, arm"
    ).fetchall()


def test_a_sync_with_variants_and_a_holdout_records_its_design(warehouse, sink) -> None:  # noqa: F811
    binding = _binding(
        channel="push",
        campaign="ab",
        holdout_share=0.2,
        variants={"A": {"text": "a"}, "B": {"text": "b"}},
        variant_weights={"A": 0.75, "B": 0.25},
    )
    dry = SyncEngine(warehouse, _destination(sink, "/push"), binding, POLICIES, now=NOON).run(dry_run=True)
    assert dry.counts["would_send"] > 0
    assert (
        warehouse.execute(
            "select count(*) from information_schema.tables where table_name = 'experiment_designs'"
        ).fetchone()[0]
        == 0
    )  # a dry run records nothing
    result = SyncEngine(warehouse, _destination(sink, "/push"), binding, POLICIES, now=NOON).run()
    assert result.sent > 0
    assert _designs(warehouse) == [
        ("ab", "push", "v1", "A", 0.6, NOON), ("ab", "push", "v1", "B", 0.2, NOON),
        ("ab", "push", "v1", "holdout", 0.2, NOON),
    ]  # fmt: skip
    # the next run with the same design adds nothing; a new holdout share is a new recording
    later = NOON + dt.timedelta(hours=1)
    SyncEngine(warehouse, _destination(sink, "/push"), binding, POLICIES, now=later).run()
    assert len(_designs(warehouse)) == 3
    SyncEngine(
        warehouse, _destination(sink, "/push"), replace(binding, holdout_share=0.5), POLICIES, now=later
    ).run()
    assert [r[3:5] for r in _designs(warehouse)[3:]] == [("A", 0.375), ("B", 0.125), ("holdout", 0.5)]


def test_a_sync_without_an_experiment_records_no_design(warehouse, sink) -> None:  # noqa: F811
    SyncEngine(warehouse, _destination(sink), _binding(), POLICIES, now=NOON).run()
    assert (
        warehouse.execute(
            "select count(*) from information_schema.tables where table_name = 'experiment_designs'"
        ).fetchone()[0]
        == 0
    )
