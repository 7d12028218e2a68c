"""Staged launches without a warehouse: what a segment's meta may declare (and the errors naming
segment, destination and key), the Wilson bound the gate judges by (hand-worked), who launched a
Dagster run (its tags), and what the sync asset's metadata says while a launch waits."""

from __future__ import annotations

import datetime as dt

import pytest

from activation.config import PolicyConfig, binding_from_meta, load_config
from activation.destinations.base import ConfigError
from activation.engine import SyncResult
from activation.launches.spec import GateRule, parse_duration
from activation.launches.stats import judge, wilson_interval, z_for
from orchestration.activation import launch_metadata, launched_by

PILOT = {
    "share": 0.05,
    "wait": "24h",
    "min_delivered": 200,
    "gate": {"open_rate": {"min": 0.15}, "unsubscribe_rate": {"max": 0.005}},
}


def meta(**destination) -> dict:
    return {
        "campaign": "spring",
        "destinations": [
            {
                "name": "email",
                "mode": "message",
                "channel": "email",
                "fields": {"email": "email"},
                **destination,
            }
        ],
    }


def test_a_pilot_and_a_roll_out_are_read_from_the_meta() -> None:
    (b,) = binding_from_meta("seg", "marts.seg", meta(pilot=PILOT))
    assert b.launch.pilot.share == 0.05 and b.launch.pilot.wait == dt.timedelta(hours=24)
    assert b.launch.pilot.gate == (
        GateRule("open_rate", "min", 0.15),
        GateRule("unsubscribe_rate", "max", 0.005),
    )
    experiment = {
        "variants": {"A": {}, "B": {}},
        "rollout": "winner",
        "test_share": 0.2,
        "decide_after": "2d",
        "fallback": "A",
    }
    (r,) = binding_from_meta("seg", "marts.seg", {**meta(), "experiment": experiment, "approval_above": 5000})
    assert r.launch.rollout.test_share == 0.2 and r.launch.rollout.decide_after == dt.timedelta(days=2)
    assert r.launch.rollout.fallback == "A" and r.launch.approval_above == 5000
    (plain,) = binding_from_meta("seg", "marts.seg", meta())
    assert plain.launch is None


@pytest.mark.parametrize(
    ("destination", "message"),
    [
        ({"pilot": {**PILOT, "share": 1.5}}, "pilot.share must be a share between 0 and 1"),
        ({"pilot": {**PILOT, "wait": "tomorrow"}}, "pilot.wait 'tomorrow' is not a duration"),
        ({"pilot": {**PILOT, "gate": {"open_rate": {"above": 0.1}}}}, "pilot.gate.open_rate has unknown key"),
        ({"pilot": {**PILOT, "gate": {"revenue": {"min": 1}}}}, "pilot.gate has unknown key(s) revenue"),
        (
            {"pilot": {**PILOT, "gate": {"click_rate": {"min": 2}}}},
            "pilot.gate.click_rate.min must be a rate",
        ),
        ({"pilot": {k: v for k, v in PILOT.items() if k != "gate"}}, "pilot.gate is missing"),
        ({"pilot": PILOT, "mode": "upsert"}, "a pilot or a roll-out needs mode: message"),
        (
            {"experiment": {"variants": {"A": {}, "B": {}}, "rollout": "best"}},
            "experiment.rollout must be 'winner'",
        ),
        (
            {
                "experiment": {
                    "variants": {"A": {}, "B": {}},
                    "rollout": "winner",
                    "test_share": 0.2,
                    "decide_after": "1h",
                }
            },
            "experiment.fallback is missing",
        ),
        (
            {
                "experiment": {
                    "variants": {"A": {}, "B": {}},
                    "rollout": "winner",
                    "test_share": 0.2,
                    "decide_after": "1h",
                    "fallback": "C",
                }
            },
            "experiment.fallback 'C' is not one of the variants",
        ),
        (
            {
                "pilot": PILOT,
                "experiment": {
                    "variants": {"A": {}, "B": {}},
                    "rollout": "winner",
                    "test_share": 0.2,
                    "decide_after": "1h",
                    "fallback": "A",
                },
            },
            "declare a pilot or experiment.rollout, not both",
        ),
        ({"approval_above": -1}, "approval_above must be a whole number"),
    ],
)
def test_a_bad_launch_is_an_error_naming_segment_destination_and_key(destination: dict, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        binding_from_meta("seg", "marts.seg", meta(**destination))
    assert str(raised.value).startswith("segment seg, destination email: ")
    assert message in str(raised.value)


def test_durations() -> None:
    assert parse_duration("w", "k", "30m") == dt.timedelta(minutes=30)
    assert parse_duration("w", "k", "0h") == dt.timedelta(0)
    assert parse_duration("w", "k", "1.5d") == dt.timedelta(hours=36)
    with pytest.raises(ConfigError, match="k 24 is not a duration"):
        parse_duration("w", "k", 24)


def test_the_approval_limit_is_a_policy(tmp_path) -> None:
    path = tmp_path / "activation.yml"
    path.write_text("destinations: {}\npolicies: {approval_above: 1000}\n")
    assert load_config(path).policies.approval_above == 1000
    assert PolicyConfig().approval_above is None
    path.write_text("destinations: {}\npolicies: {approval_above: lots}\n")
    with pytest.raises(ConfigError, match="policies.approval_above must be a whole number"):
        load_config(path)


def test_wilson_bounds_worked_by_hand() -> None:
    # z = 1.959964, z² = 3.841459
    assert z_for() == pytest.approx(1.959964, abs=1e-6)
    # 30 of 200: centre (0.15 + 3.841459/400) / (1 + 3.841459/200) = 0.156596,
    # half 1.959964 × sqrt(0.15 × 0.85/200 + 3.841459/160000) / 1.0192073 = 0.049460
    low, high = wilson_interval(30, 200)
    assert low == pytest.approx(0.107136, abs=1e-6) and high == pytest.approx(0.206056, abs=1e-6)
    # 0 of 10: the upper bound is z² / (n + z²) = 3.841459 / 13.841459
    assert wilson_interval(0, 10) == (pytest.approx(0.0, abs=1e-12), pytest.approx(0.277533, abs=1e-6))
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_a_rate_passes_only_when_its_bound_clears_the_threshold() -> None:
    lucky = judge("open_rate", "min", 0.15, 3, 10)  # 30% of 10: lower bound 10.78%
    assert not lucky.passed and lucky.value == 0.3 and lucky.bound == pytest.approx(0.107791, abs=1e-6)
    assert judge("open_rate", "min", 0.15, 60, 200).passed  # lower bound 24.07%
    # no unsubscribe at all, but 200 messages cannot show a rate below 0.5% (upper bound 1.88%)
    assert not judge("unsubscribe_rate", "max", 0.005, 0, 200).passed
    assert judge("unsubscribe_rate", "max", 0.005, 0, 1000).passed  # upper 3.83/1003.84 = 0.38%
    assert not judge("click_rate", "min", 0.0, 0, 0).passed  # nothing delivered: nothing to pass on
    assert "lower bound 10.78% fails min 15.00%" in lucky.describe()


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({"tideline/launched_by": "cli:maria", "dagster/schedule_name": "daily"}, "cli:maria"),
        ({"dagster/schedule_name": "daily_pipeline"}, "schedule:daily_pipeline"),
        ({"dagster/sensor_name": "deferred_messages"}, "sensor:deferred_messages"),
        ({"dagster/backfill": "abc"}, "backfill:abc"),
        ({"dagster/user": "dana@example.com"}, "user:dana@example.com"),
        ({}, "dagster:manual"),
    ],
)
def test_who_launched_a_dagster_run(tags: dict, expected: str) -> None:
    assert launched_by(tags) == expected


def test_the_metadata_says_why_a_launch_waits_and_what_to_do() -> None:
    (b,) = binding_from_meta("seg", "marts.seg", meta(pilot=PILOT))
    result = SyncResult(
        "s1", b.sync_key, False, launch_stage="held", launch_waiting={"pilot:gate_failed": 40}
    )
    metadata = launch_metadata(b, result)
    assert metadata["launch_stage"].value == "held"
    assert metadata["launch_waiting"].value == {"pilot:gate_failed": 40}
    assert "tideline pilot release seg__email --by NAME" in metadata["launch_what_to_do"].value
    waiting = SyncResult("s2", b.sync_key, False, launch_stage="awaiting_approval",
                         launch_waiting={"approval:awaiting": 900})  # fmt: skip
    assert "tideline approve seg__email --by NAME" in launch_metadata(b, waiting)["launch_what_to_do"].value
    assert launch_metadata(b, SyncResult("s3", b.sync_key, False)) == {}


def test_the_summary_shows_each_launchs_stage_its_decision_and_what_waits_for_approval() -> None:
    import duckdb

    from activation.launches import store
    from activation.ledger import ensure_schema
    from tideline.reporting.summary import _launch_lines

    con = duckdb.connect()
    ensure_schema(con)
    for sync_id, key, started, stage, audience, reasons in (
        ("r1", "win_back__sms", dt.datetime(2026, 3, 2, 9), "pilot", 500, '{"pilot:awaiting_gate": 350}'),
        ("r2", "win_back__sms", dt.datetime(2026, 3, 3, 9), "full", 500, '{"no_consent": 12}'),
        ("r3", "win_back__email", dt.datetime(2026, 3, 3, 9), "awaiting_approval", 9000,
         '{"approval:awaiting": 8000, "holdout": 900}'),
        ("r4", "crm__crm", dt.datetime(2026, 3, 3, 9), None, 40, "{}"),
    ):  # fmt: skip
        con.execute(
            """insert into tideline_sync.sync_runs (sync_id, sync_key, segment, destination, mode, dry_run,
                   started_at, segment_rows, skipped_by_reason, content_version, launch_stage)
               values (?, ?, 'seg', 'd', 'message', false, ?, ?, ?, 'v1', ?)""",
            [sync_id, key, started, audience, reasons, stage],
        )
    store.record(
        con,
        [store.Decision("win_back__sms", "win_back", "v1", "pilot", "pass", dt.datetime(2026, 3, 3, 8, 59),
                        "gate:auto", detail="pilot gate passed on 150 delivered: click_rate ...")],
    )  # fmt: skip
    assert _launch_lines(con) == [
        "",
        "Launches (pilot, roll-out, approval: docs/launches.md)",
        f"  {'win_back__email':<37}{'awaiting_approval':<19}no decision yet; holding approval:awaiting 8,000",
        f"  {'win_back__sms':<37}{'full':<19}pilot gate passed on 150 delivered: click_rate ... "
        "(gate:auto, 2026-03-03 08:59)",
        "  waiting for approval: win_back__email (9,000 customers, content v1): "
        "tideline approve win_back__email --by NAME",
    ]
    assert _launch_lines(duckdb.connect()) == []  # a warehouse before any sync


def test_which_activations_need_an_approval() -> None:
    from dataclasses import replace

    from activation.launches.gate import approval_limit
    from activation.launches.spec import LaunchSpec

    (message,) = binding_from_meta("seg", "marts.seg", meta())
    assert approval_limit(message, 1000) == 1000  # the policies' limit
    assert approval_limit(replace(message, launch=LaunchSpec(approval_above=50)), 1000) == 50  # its own wins
    assert approval_limit(replace(message, mode="upsert"), 1000) is None  # sends no message
    step = replace(message, row_key="entry_id")  # a journey step: one tick's entries, not an audience
    assert approval_limit(step, 1000) is None
    assert approval_limit(replace(step, launch=LaunchSpec(approval_above=50)), 1000) == 50


def test_only_a_roll_outs_test_share_is_randomised() -> None:
    from activation.launches.gate import randomised_share

    experiment = {"variants": {"A": {}, "B": {}}, "rollout": "winner", "test_share": 0.2, "decide_after": "1h",
                  "fallback": "A"}  # fmt: skip
    (rollout,) = binding_from_meta("seg", "marts.seg", {**meta(), "experiment": experiment})
    (plain,) = binding_from_meta("seg", "marts.seg", meta(experiment={"variants": {"A": {}, "B": {}}}))
    assert (randomised_share(rollout), randomised_share(plain)) == (0.2, 1.0)


def test_an_outcome_journal_written_before_stages_still_reads(tmp_path) -> None:
    """A run that died before an upgrade left a journal without the stage column: the next run
    records its deliveries (stage unknown: null), never fails on the missing column."""
    import pyarrow as pa

    from activation.engine.journal import OutcomeJournal

    old = pa.schema([f for f in OutcomeJournal.SCHEMA if f.name != "stage"])
    meta = {"sync_id": "s1", "channel": "sms", "campaign": "spring", "content_version": "v1",
            "recorded_at": "2026-03-02T12:00:00"}  # fmt: skip
    path = tmp_path / "outcomes.arrow"
    with path.open("wb") as fh, pa.ipc.new_stream(fh, old.with_metadata(meta)) as writer:
        writer.write_table(
            pa.table(
                {"idempotency_key": ["k1"], "customer_id": ["c1"], "action": ["send"], "variant": [""],
                 "attempt": pa.array([1], pa.int32()), "remote_id": [None]},
                schema=old,
            )
        )  # fmt: skip
    table, stamp = OutcomeJournal.read(path, "seg__sms")
    assert table.schema.names == OutcomeJournal.SCHEMA.names
    assert table.column("stage").to_pylist() == [None] and table.column("customer_id").to_pylist() == ["c1"]
    assert stamp.sync_id == "s1"


def test_a_ledger_from_before_launches_gains_the_new_columns_and_table() -> None:
    import duckdb

    from activation.ledger import ensure_schema

    con = duckdb.connect()
    ensure_schema(con)
    con.execute("drop table tideline_sync.launch_decisions")
    for table, column in (("delivery_log", "stage"), ("sync_runs", "launched_by"), ("sync_runs", "campaign"),
                          ("sync_runs", "content_version"), ("sync_runs", "launch_stage")):  # fmt: skip
        con.execute(f"alter table tideline_sync.{table} drop column {column}")
    con.execute(
        "insert into tideline_sync.sync_runs (sync_id, sync_key, segment, destination, mode, dry_run, started_at) "
        "values ('old', 'k', 's', 'd', 'message', false, timestamp '2026-01-01')"
    )
    ensure_schema(con)
    columns = set(
        con.execute(
            "select table_name || '.' || column_name from information_schema.columns where table_schema = 'tideline_sync'"
        ).fetchall()
    )
    assert {("delivery_log.stage",), ("sync_runs.launched_by",), ("sync_runs.launch_stage",),
            ("launch_decisions.decided_by",)} <= columns  # fmt: skip
    assert con.execute("select launched_by from tideline_sync.sync_runs").fetchall() == [(None,)]
