"""activation.experiments: the intended share of each arm a sync records (the SRM check's expectation)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import duckdb
import pytest

from activation.config import SyncBinding
from activation.experiments import design_of, record_design

NOW = dt.datetime(2026, 3, 2, 12, 0)


def _binding(**kw) -> SyncBinding:
    base = {
        "segment": "seg",
        "relation": "marts.seg",
        "destination": "mail",
        "mode": "message",
        "channel": "email",
        "fields": {"email": "email"},
        "campaign": "spring",
        "content_version": "v1",
    }
    return SyncBinding(**{**base, **kw})


def test_holdout_and_weighted_variants_share_the_audience() -> None:
    b = _binding(
        holdout_share=0.2,
        variants={"A": {}, "B": {}, "C": {}},
        variant_weights={"A": 0.5, "B": 0.3, "C": 0.2},
    )
    # holdout h = 0.2; variant i (1 - h) * weight_i: 0.8 * 0.5, 0.8 * 0.3, 0.8 * 0.2
    assert design_of(b) == pytest.approx({"holdout": 0.2, "A": 0.4, "B": 0.24, "C": 0.16})
    assert sum(design_of(b).values()) == pytest.approx(1.0)


def test_a_holdout_without_variants_has_a_treated_arm() -> None:
    assert design_of(_binding(holdout_share=0.1)) == pytest.approx({"holdout": 0.1, "treated": 0.9})


def test_variants_without_holdout() -> None:
    b = _binding(variants={"A": {}, "B": {}}, variant_weights={"A": 0.5, "B": 0.5})
    assert design_of(b) == {"A": 0.5, "B": 0.5}


def test_a_rollout_scales_the_randomised_share() -> None:
    b = _binding(holdout_share=0.1, variants={"A": {}, "B": {}}, variant_weights={"A": 0.5, "B": 0.5})
    # a 20% test share: the variants get 0.9 * 0.5 * 0.2 each, the holdout stays 0.1
    assert design_of(b, share_scale=0.2) == pytest.approx({"holdout": 0.1, "A": 0.09, "B": 0.09})
    with pytest.raises(ValueError, match="share_scale must be in"):
        design_of(b, share_scale=0)


@pytest.mark.parametrize(
    "binding",
    [
        _binding(),  # no experiment
        _binding(mode="upsert", channel=None, holdout_share=0.1),  # not a message
        _binding(campaign="test:spring", holdout_share=0.1),  # a test send
        # a journey delivery: one engine run per split arm, assigned at entry
        _binding(row_key="entry_id", variants={"A": {}}, variant_weights={"A": 1.0}),
    ],
)
def test_what_is_not_an_experiment_design(binding: SyncBinding) -> None:
    assert design_of(binding) == {}
    con = duckdb.connect()
    assert record_design(con, binding, NOW) is False
    assert (
        con.execute(
            "select count(*) from information_schema.tables where table_name = 'experiment_designs'"
        ).fetchone()[0]
        == 0
    )


def test_a_design_is_recorded_once_until_it_changes() -> None:
    con = duckdb.connect()
    b = _binding(holdout_share=0.2, variants={"A": {}, "B": {}}, variant_weights={"A": 0.5, "B": 0.5})
    assert record_design(con, b, NOW) is True
    assert record_design(con, b, NOW + dt.timedelta(days=1)) is False  # the same design: no new rows
    changed = replace(b, holdout_share=0.1)
    assert record_design(con, changed, NOW + dt.timedelta(days=2)) is True
    other_version = replace(changed, content_version="v2")
    assert record_design(con, other_version, NOW + dt.timedelta(days=3)) is True
    rows = con.execute(
        "select content_version, arm, expected_share, recorded_at from tideline_sync.experiment_designs "
        "order by recorded_at, arm"
    ).fetchall()
    assert [(v, a, round(s, 6), t.day) for v, a, s, t in rows] == [
        ("v1", "A", 0.4, 2), ("v1", "B", 0.4, 2), ("v1", "holdout", 0.2, 2),
        ("v1", "A", 0.45, 4), ("v1", "B", 0.45, 4), ("v1", "holdout", 0.1, 4),
        ("v2", "A", 0.45, 5), ("v2", "B", 0.45, 5), ("v2", "holdout", 0.1, 5),
    ]  # fmt: skip
