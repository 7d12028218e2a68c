"""Experiment designs: the share of the audience each arm of a campaign is meant to get, recorded
by every live sync of a message binding with variants or a holdout, so the sample-ratio-mismatch
check of marts.experiment_results can compare what was observed with what was intended.

    record_design(con, binding, now)            # the sync engine calls it after apply_policies

tideline_sync.experiment_designs holds one row per campaign × channel × content version × arm
and recording: holdout share h, variant i (1 − h) · weight_i; a binding with a holdout and no
variants has the arm 'treated' (1 − h), named as experiment_results names the sent customers.
A recording that says the same as the latest one for its campaign × channel × content version is
not written again, so a daily sync adds no rows while the design stands. dbt reads the table
through the macro experiment_designs_relation() (dbt_project/macros/experiment_designs.sql),
which stands in for it with an empty, typed select on a warehouse that never synced;
tests/dbt/test_experiments.py holds the two to the same columns and types.

Journey deliveries (a binding with a row_key) are not designs: their split arms are assigned at
entry, one engine run per arm (journey_lift measures them). Test sends (campaign `test:...`) are
not either.
"""

from __future__ import annotations

import datetime as dt

import duckdb

from activation.config import SyncBinding
from activation.ledger import SCHEMA

TABLE = "experiment_designs"
HOLDOUT_ARM = "holdout"
TREATED_ARM = "treated"  # the sent customers of a campaign without variants
TEST_PREFIX = "test:"

# dbt's stand-in (experiment_design_columns() in dbt_project/macros/experiment_designs.sql)
# repeats these columns and types: change both.
DDL = f"""
create schema if not exists {SCHEMA};
create table if not exists {SCHEMA}.{TABLE} (
    campaign varchar not null,
    channel varchar not null,
    content_version varchar not null,
    arm varchar not null,
    expected_share double not null,  -- of the customers the campaign exposes on the channel
    recorded_at timestamp not null
);
"""


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the designs table when it does not exist (a warehouse that synced before designs)."""
    for statement in DDL.split(";"):
        if statement.strip():
            con.execute(statement)


def design_of(binding: SyncBinding, share_scale: float = 1.0) -> dict[str, float]:
    """{arm: expected share} of a message binding with variants or a holdout; empty for anything
    else (no experiment, a journey delivery, a test send, a binding without a channel).

    `share_scale`: the share of the eligible audience the variants are randomised over in this
    run (a winner roll-out's test share; 1 otherwise): the variants' shares are multiplied by it.
    The SRM check normalises the shares over the arms it observes, so they need not add up to 1."""
    if binding.mode != "message" or binding.channel is None or binding.row_key is not None:
        return {}
    if binding.campaign.startswith(TEST_PREFIX):
        return {}
    if not binding.variants and binding.holdout_share <= 0:
        return {}
    if not 0 < share_scale <= 1:
        raise ValueError(f"{binding.sync_key}: share_scale must be in (0, 1], got {share_scale}")
    h = float(binding.holdout_share)
    design = {HOLDOUT_ARM: h} if h > 0 else {}
    if binding.variants:
        for name in sorted(binding.variants):
            design[name] = (1 - h) * float(binding.variant_weights[name]) * share_scale
    else:
        design[TREATED_ARM] = (1 - h) * share_scale
    return design


def record_design(
    con: duckdb.DuckDBPyConnection, binding: SyncBinding, now: dt.datetime, *, share_scale: float = 1.0
) -> bool:
    """Record the expected share of every arm of `binding` (see design_of) at `now`, unless the
    latest recording for its campaign × channel × content version says the same. Returns whether
    rows were written."""
    design = design_of(binding, share_scale)
    if not design:
        return False
    ensure_schema(con)
    key = [binding.campaign, binding.channel, binding.content_version]
    latest = con.execute(
        f"""select arm, expected_share from {SCHEMA}.{TABLE}
            where campaign = ? and channel = ? and content_version = ?
              and recorded_at = (select max(recorded_at) from {SCHEMA}.{TABLE}
                                 where campaign = ? and channel = ? and content_version = ?)""",
        key + key,
    ).fetchall()
    if {arm: round(share, 12) for arm, share in latest} == {a: round(s, 12) for a, s in design.items()}:
        return False
    at = now.replace(tzinfo=None)
    con.executemany(
        f"insert into {SCHEMA}.{TABLE} values (?, ?, ?, ?, ?, ?)",
        [[*key, arm, share, at] for arm, share in design.items()],
    )
    return True
