"""The launch gate: the sync engine's step after the policies (DESIGN.md: "pilot / approval gates").

    outcome = apply_launch_gates(con, binding, now, audience, approval_above=policies.approval_above)

It reads `_decided` (the plan with the policies' decisions) and changes it in place:

1. it works out the launch's stage from its decisions so far (activation.launches.store) and
   makes the decision that is due now: a pilot's gate once `wait` has passed since the pilot's
   first send and `min_delivered` pilot messages were delivered (marts.launch_gate_rates, judged
   by activation.launches.stats); a roll-out's winner once `decide_after` has passed since the
   test's first send (marts.experiment_results: the variant with is_winner, else the fallback);
2. each record gets its `stage`: inside the sample (a stable hash of campaign and customer below
   the pilot share or the test share, salted apart from the holdout and the variant hashes) it is
   `pilot` or `test`; outside, `full` or `rollout`;
3. a record outside the sample that the policies would send (or defer) is skipped while the stage
   holds it, with the reason: `pilot:awaiting_gate`, `pilot:gate_failed` (until a person releases
   or cancels it), `pilot:cancelled`, `rollout:awaiting_decision`, or `approval:awaiting` (the
   segment has more customers than the approval limit and nobody approved this content version).
   A skip is not final: the next run plans the record again and sends it once the stage allows;
4. after a roll-out's decision, the records outside the test share get the winner's variant.

The holdout is never touched (it stays out throughout, so lift is still measured), and neither
is a removal. A customer's message key does not depend on the stage, so a customer the pilot
reached is never sent to again by the roll-out, a crash in between included.

Any SyncBinding with a `launch` can be gated, a journey step's included; with `record=False`
(dry runs) the decisions due are worked out and reported but not written.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import duckdb

from activation.config import SyncBinding
from activation.launches import store
from activation.launches.spec import LaunchSpec, PilotSpec, RolloutSpec
from activation.launches.stats import judge
from activation.policies import _unit_sql
from activation.warehouse import execute, quote_relation, table_exists

log = logging.getLogger(__name__)

RATES_MART = "marts.launch_gate_rates"
RESULTS_MART = "marts.experiment_results"
AUTO = "gate:auto"
HELD = ("send", "defer")  # the policies' decisions a stage holds back

# what the launch stage says about the records outside the sample
AWAITING_GATE = "pilot:awaiting_gate"
GATE_FAILED = "pilot:gate_failed"
CANCELLED = "pilot:cancelled"
AWAITING_DECISION = "rollout:awaiting_decision"
AWAITING_APPROVAL = "approval:awaiting"

# called with the binding and its failing rules in words, at every run that holds the rest after a
# failed gate (the alert is deduplicated downstream, so one that could not be sent is tried again)
GateFailed = Callable[[SyncBinding, list[str]], None]


@dataclass
class LaunchOutcome:
    """What the gate did in one run."""

    stage: str | None = None  # pilot, held, cancelled, test, rollout, full, awaiting_approval
    waiting: dict[str, int] = field(default_factory=dict)  # records held, by reason
    decisions: list[str] = field(default_factory=list)  # the decisions made this run, in words
    failed: list[str] = field(default_factory=list)  # a failed gate's failing rules, in words


@dataclass(frozen=True)
class _Stage:
    """Where a launch is: which records are in the sample, what they and the rest carry, why the rest waits."""

    name: str
    salt: str | None = None  # None: no sample (everyone is "the rest")
    share: float = 0.0
    sample_stage: str = "full"
    rest_stage: str = "full"
    hold: str | None = None
    winner: str | None = None


def approval_limit(binding: SyncBinding, approval_above: int | None) -> int | None:
    """The binding's approval limit: its own (approval_above in its meta), else the policies'.
    Only message activations need approval (a CRM upsert or an ad audience sends no message). A
    keyed binding (a journey step: its segment is one tick's entries, not the journey's audience)
    takes the policies' limit only through its own launch spec: the journey decides what its
    audience is."""
    if binding.mode != "message":
        return None
    own = binding.launch.approval_above if binding.launch else None
    if own is not None or binding.row_key is not None:
        return own
    return approval_above


def randomised_share(binding: SyncBinding) -> float:
    """The share of the eligible audience whose variant is randomised: a winner roll-out's test
    share (the rest gets the winner, chosen, not drawn), else all of it. The experiment design
    (activation.experiments.record_design, contract §1) scales each variant's expected share
    (1 - holdout) × weight by it, and the roll-out's sends are the arm `rollout`."""
    launch = binding.launch
    return launch.rollout.test_share if launch and launch.rollout else 1.0


def apply_launch_gates(
    con: duckdb.DuckDBPyConnection,
    binding: SyncBinding,
    now: dt.datetime,
    audience: int,
    *,
    approval_above: int | None = None,
    record: bool = True,
    on_gate_failed: GateFailed | None = None,
    rates: str = RATES_MART,
    results: str = RESULTS_MART,
) -> LaunchOutcome:
    """Gate `_decided` for the binding's launch (module docstring). `audience`: the segment's
    customers, compared with the approval limit. `on_gate_failed` is called with the failing
    rules when a gate fails in this run (staff alerts: activation.launches.notify)."""
    spec = binding.launch or LaunchSpec()
    limit = approval_limit(binding, approval_above)
    outcome = LaunchOutcome()
    if spec.pilot is None and spec.rollout is None and limit is None:
        return outcome
    now = now.replace(tzinfo=None)
    if spec.pilot is not None:
        stage = _pilot_stage(con, binding, spec.pilot, now, record, rates, outcome)
    elif spec.rollout is not None:
        stage = _rollout_stage(con, binding, spec.rollout, now, record, results, outcome)
    else:
        stage = _Stage("full")
    needs_approval = stage.hold is None and limit is not None and audience > limit
    if needs_approval and store.approval(con, binding.sync_key, binding.content_version) is None:
        stage = replace(stage, name="awaiting_approval", hold=AWAITING_APPROVAL)
    _apply(con, stage, outcome)
    if outcome.failed and on_gate_failed is not None and record:
        on_gate_failed(binding, outcome.failed)
    return outcome


def _pilot_stage(
    con: duckdb.DuckDBPyConnection,
    binding: SyncBinding,
    pilot: PilotSpec,
    now: dt.datetime,
    record: bool,
    rates: str,
    outcome: LaunchOutcome,
) -> _Stage:
    salt = f"pilot|{binding.campaign}"
    verdict = store.latest_verdict(con, binding.sync_key, binding.content_version, "pilot")
    if verdict is None:
        started = store.first_sent(con, binding.sync_key, binding.content_version, "pilot")
        if started is not None and now >= started + pilot.wait:
            verdict = _judge_pilot(con, binding, pilot, now, record, rates, outcome)
    decision = verdict[0] if verdict else None
    if decision == "fail":
        outcome.failed = store.failing_rules(con, binding.sync_key, binding.content_version)
    if decision in ("pass", "released"):
        return _Stage("full", salt, pilot.share, "pilot", "full")
    hold = {None: AWAITING_GATE, "fail": GATE_FAILED, "cancelled": CANCELLED}[decision]
    name = {None: "pilot", "fail": "held", "cancelled": "cancelled"}[decision]
    return _Stage(name, salt, pilot.share, "pilot", "full", hold)


def _judge_pilot(
    con: duckdb.DuckDBPyConnection,
    binding: SyncBinding,
    pilot: PilotSpec,
    now: dt.datetime,
    record: bool,
    rates: str,
    outcome: LaunchOutcome,
) -> tuple[str, None, dt.datetime, str] | None:
    """Judge the gate when enough was delivered; the verdict, or None (not judged yet)."""
    counts = gate_counts(con, binding, rates)
    delivered = counts.get("delivery_rate", (0, 0))[0]
    if delivered < max(pilot.min_delivered, 1):
        outcome.decisions.append(
            f"pilot gate not judged yet: {delivered} pilot messages delivered, {pilot.min_delivered} needed"
        )
        return None
    verdicts = [judge(r.metric, r.direction, r.threshold, *counts.get(r.metric, (0, 0))) for r in pilot.gate]
    decision = "pass" if all(v.passed for v in verdicts) else "fail"
    rows = [
        store.Decision(
            binding.sync_key,
            binding.campaign,
            binding.content_version,
            "pilot",
            "pass" if v.passed else "fail",
            now,
            AUTO,
            v.metric,
            v.value,
            v.bound,
            v.threshold,
            v.sample,
            detail=v.describe(),
        )
        for v in verdicts
    ]
    failing = [v for v in verdicts if not v.passed]
    summary = (
        f"pilot gate {'passed' if decision == 'pass' else 'FAILED'} on {delivered} delivered: "
        + "; ".join(v.describe() for v in (failing or verdicts))
    )
    rows.append(
        store.Decision(
            binding.sync_key,
            binding.campaign,
            binding.content_version,
            "pilot",
            decision,
            now,
            AUTO,
            sample=delivered,
            detail=summary,
        )
    )
    if record:
        store.record(con, rows)
    outcome.decisions.append(summary)
    log.info("%s: %s", binding.sync_key, summary)
    return decision, None, now, AUTO


def gate_counts(
    con: duckdb.DuckDBPyConnection, binding: SyncBinding, rates: str = RATES_MART
) -> dict[str, tuple[int, int]]:
    """{metric: (successes, sample)} of the launch's messages (marts.launch_gate_rates); empty
    before dbt has built the mart."""
    schema, _, table = rates.rpartition(".")
    if not table_exists(con, schema or "main", table):
        return {}
    rows = con.execute(
        f"""select metric, coalesce(successes, 0), coalesce(sample, 0) from {quote_relation(rates)}
            where sync_key = ? and content_version = ?""",
        [binding.sync_key, binding.content_version],
    ).fetchall()
    return {metric: (int(k), int(n)) for metric, k, n in rows}


def _rollout_stage(
    con: duckdb.DuckDBPyConnection,
    binding: SyncBinding,
    rollout: RolloutSpec,
    now: dt.datetime,
    record: bool,
    results: str,
    outcome: LaunchOutcome,
) -> _Stage:
    salt = f"rollout|{binding.campaign}"
    verdict = store.latest_verdict(con, binding.sync_key, binding.content_version, "rollout")
    if verdict is None:
        started = store.first_sent(con, binding.sync_key, binding.content_version, "test")
        if started is not None and now >= started + rollout.decide_after:
            verdict = _decide_winner(con, binding, rollout, now, record, results, outcome)
    if verdict is None:
        return _Stage("test", salt, rollout.test_share, "test", "rollout", AWAITING_DECISION)
    return _Stage("rollout", salt, rollout.test_share, "test", "rollout", winner=verdict[1])


def _decide_winner(
    con: duckdb.DuckDBPyConnection,
    binding: SyncBinding,
    rollout: RolloutSpec,
    now: dt.datetime,
    record: bool,
    results: str,
    outcome: LaunchOutcome,
) -> tuple[str, str, dt.datetime, str]:
    """The winner by marts.experiment_results (is_winner: its documented rule), else the fallback."""
    winners: list[tuple[Any, ...]] = []
    schema, _, table = results.rpartition(".")
    if table_exists(con, schema or "main", table):
        winners = con.execute(
            f"""select arm, conversion_rate, reach from {quote_relation(results)}
                where campaign = ? and channel = ? and arm_type = 'variant' and is_winner""",
            [binding.campaign, binding.channel],
        ).fetchall()
    winners = [w for w in winners if w[0] in binding.variants]
    if len(winners) == 1:
        arm, rate, reach = winners[0]
        decision, variant = "winner", str(arm)
        detail = f"roll-out: variant {variant} won (conversion {float(rate or 0):.2%} of {int(reach or 0)}): it goes to the rest"
        row = store.Decision(
            binding.sync_key,
            binding.campaign,
            binding.content_version,
            "rollout",
            decision,
            now,
            AUTO,
            "conversion_rate",
            rate,
            None,
            None,
            reach,
            variant,
            detail,
        )
    else:
        decision, variant = "fallback", rollout.fallback
        detail = f"roll-out: no significant winner, the fallback variant {variant} goes to the rest"
        row = store.Decision(
            binding.sync_key,
            binding.campaign,
            binding.content_version,
            "rollout",
            decision,
            now,
            AUTO,
            variant=variant,
            detail=detail,
        )
    if record:
        store.record(con, [row])
    outcome.decisions.append(detail)
    log.info("%s: %s", binding.sync_key, detail)
    return decision, variant, now, AUTO


def _apply(con: duckdb.DuckDBPyConnection, stage: _Stage, outcome: LaunchOutcome) -> None:
    """Stage, hold and winner onto `_decided` (removals are left alone)."""
    values: dict[str, Any] = {"sample_stage": stage.sample_stage, "rest_stage": stage.rest_stage}
    if stage.salt is not None:
        values |= {"launch_salt": stage.salt, "launch_share": stage.share}
        in_sample = f"({_unit_sql('launch_salt', 'customer_id')} < $launch_share)"
    else:
        in_sample = "false"
    execute(
        con,
        f"""update _decided set stage = case when {in_sample} then $sample_stage else $rest_stage end
            where action <> 'delete'""",
        values,
    )
    held = f"action <> 'delete' and list_contains($held, decision) and not {in_sample}"
    if stage.hold is not None:
        n = execute(
            con, f"select count(*) from _decided where {held}", {**values, "held": list(HELD)}
        ).fetchone()[0]
        execute(
            con,
            f"update _decided set decision = 'skip', reason = $hold where {held}",
            {**values, "held": list(HELD), "hold": stage.hold},
        )
        if n:
            outcome.waiting[stage.hold] = int(n)
    elif stage.winner is not None:
        execute(
            con,
            f"update _decided set variant = $winner where {held}",
            {**values, "held": list(HELD), "winner": stage.winner},
        )
    outcome.stage = stage.name
