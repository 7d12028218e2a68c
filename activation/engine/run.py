"""One sync run, segment × destination, in the order it happens (`SyncEngine._run`).

    result = SyncEngine(con, destination, binding, policies).run(dry_run=False)

1. Resolve what a crashed run left in flight (activation.engine.journal): idempotent
   destinations resend what was not recorded, under the same keys; for the rest (SMTP) the
   delivery journal decides, and what it cannot becomes `unknown`, never resent.
2. Settle `unknown` records of earlier runs with whatever can answer (activation.reconcile:
   the destination's delivery evidence, provider webhooks): confirmed ones become `sent`,
   undelivered ones `released` (planned again); the rest stay unknown and are reported.
3. Plan (activation.planner) and apply policies (activation.policies) in the warehouse;
   records that failed `max_attempts` times become dead letters; then the launch gate
   (activation.launches.gate): a pilot, a winner roll-out or an approval limit holds back what
   its stage does not allow yet, and makes the decisions that are due.
4. Hold for the destination's Retry-After from an earlier run (activation.engine.backoff):
   wait it out, or defer the sends until then.
5. Record every decision that is not a send (activation.engine.ledger_writes).
6. Send (activation.engine.sending) and record sent / failed / unknown per record.
7. Fold delivered upserts and deletes into synced_state, finalize the destination (for
   audience files also what a crashed run left unfinalised) and write the run record
   (activation.engine.state).

The calling thread owns the warehouse connection; a writer thread appends outcomes on a
second connection (a cursor of the same database); workers send (and journal).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from activation import planner, reconcile
from activation.config import PolicyConfig, SyncBinding
from activation.destinations.base import Destination
from activation.engine.backoff import Backoff
from activation.engine.estimate import send_estimate
from activation.engine.journal import SyncFiles, resolve_interrupted
from activation.engine.ledger_writes import RunStamp, record_decisions
from activation.engine.sending import Sender, sync_context
from activation.engine.state import SyncResult, fold_state, write_run
from activation.experiments import record_design
from activation.launches.gate import GateFailed, apply_launch_gates, randomised_share
from activation.ledger import ensure_schema
from activation.policies import apply_policies
from activation.ratelimit import TokenBucket
from activation.reconcile import DeliveryEvidence
from activation.warehouse import quote_identifier

log = logging.getLogger(__name__)

_WORK_VIEWS = ("_plan", "_cand")
_WORK_TABLES = ("_delivered", "_decided", "_latest", "_diff", "_rejects")
_SAMPLE_COLUMNS = ("customer_id", "action", "change", "decision", "reason", "variant")


class SyncEngine:
    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        destination: Destination,
        binding: SyncBinding,
        policies: PolicyConfig,
        *,
        workers: int = 4,
        rate_per_second: float = 0.0,
        now: dt.datetime | None = None,
        customers: str = "marts.dim_customers",
        key_column: str = "customer_id",
        journal_dir: Path | None = None,
        evidence: Sequence[DeliveryEvidence] = (),
        max_backoff_wait_seconds: float = 120.0,
        keep_decisions: str | None = None,
        record_run: bool = True,
        launched_by: str | None = None,
        on_gate_failed: GateFailed | None = None,
    ):
        """`journal_dir`: where the delivery journal and the destination's "not before" file live
        (default: next to the warehouse file). `evidence`: more sources for settling unknown
        records, after the destination's own (e.g. reconcile.ProviderEvents(landing_dir)).
        `max_backoff_wait_seconds`: a Retry-After from an earlier run shorter than this is
        waited out; a longer one defers the run's sends. `keep_decisions`: the name of a temp table
        to leave behind with each planned record's decision (customer_id, idempotency_key, decision,
        reason, not_before): a journey tick reads it, dry runs included. `record_run`: False leaves
        sync_runs alone (a journey simulation's dry runs, hundreds of them). `launched_by`: who or
        what started the run (schedule:<name>, sensor:<name>, user:<name>, cli:<person>), kept in
        sync_runs. `on_gate_failed`: called when a launch's pilot gate fails in this run (staff
        alerts, activation.launches.notify)."""
        self.con, self.destination, self.binding, self.policies = con, destination, binding, policies
        self.journal_dir = journal_dir
        self.workers = max(1, workers)
        self.bucket = TokenBucket(rate_per_second, capacity=max(rate_per_second, destination.max_batch_size))
        self.now = (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None)
        self.customers, self.key_column = customers, key_column
        self.evidence = [*destination.delivery_evidence(), *evidence]
        self.max_backoff_wait_seconds = max_backoff_wait_seconds
        self.keep_decisions = keep_decisions
        self.record_run = record_run
        self.launched_by = launched_by
        self.on_gate_failed = on_gate_failed

    def run(self, dry_run: bool = False, sample_size: int = 10) -> SyncResult:
        try:
            return self._run(dry_run, sample_size)
        finally:
            self._drop_work_tables()

    def _run(self, dry_run: bool, sample_size: int) -> SyncResult:
        started = time.monotonic()
        self.sync_id = uuid.uuid4().hex
        b, con = self.binding, self.con
        stamp = RunStamp.of(b, self.sync_id, self.now)
        result = SyncResult(self.sync_id, b.sync_key, dry_run)
        ensure_schema(con)
        files = SyncFiles.locate(con, b.sync_key, b.destination, self.journal_dir)
        phases = result.phase_seconds
        mark = time.monotonic()
        if not dry_run:
            result.unknown = resolve_interrupted(con, files, stamp, self.destination.idempotent_delivery)
            settled = reconcile.reconcile(con, b.sync_key, self.evidence, sync_id=self.sync_id, now=self.now)
            result.confirmed, result.released = settled.confirmed, settled.released
        mark = _lap(phases, "resolve", mark)
        planner.plan(con, b, self.key_column)
        apply_policies(con, b, self.policies, self.now, self.customers)
        if not dry_run:  # the arms' intended shares, for the sample-ratio check (experiment_results)
            record_design(con, b, self.now, share_scale=randomised_share(b))
        result.counts = planner.counts(con, b)
        _dead_letter_exhausted(con, self.policies.max_attempts)
        self._gate(result, dry_run)
        mark = _lap(phases, "plan_and_policies", mark)
        if self.keep_decisions is not None:
            con.execute(
                f"create or replace temp table {quote_identifier(self.keep_decisions)} as "
                "select customer_id, idempotency_key, decision, reason, not_before from _decided"
            )
        backoff = Backoff(files.not_before, self.max_backoff_wait_seconds)
        wait = 0.0
        if not dry_run:
            wait, result.backoff_until = backoff.hold(con, b.sync_key)
        decided = dict(con.execute("select decision, count(*) from _decided group by 1").fetchall())
        result.skipped_by_reason = _skipped_by_reason(con)
        if dry_run:
            result.samples = _samples(con, sample_size)
            result.counts["would_send"] = int(decided.get("send", 0))
            estimate = send_estimate(con, b, result.counts["would_send"], self.bucket.rate)
            result.estimated_send_seconds, result.estimate_basis = estimate.seconds, estimate.basis
            return self._finish(result, started)

        mark = _lap(phases, "plan_and_policies", mark)
        record_decisions(con, stamp, decided)
        mark = _lap(phases, "record_decisions", mark)
        result.dead_letters = int(decided.get("dead", 0))
        if decided.get("send", 0):
            if wait > 0:
                log.info("%s: waiting %.1fs: the destination asked for it (Retry-After)", b.sync_key, wait)
                time.sleep(wait)
            sender = Sender(
                con, self.destination, b, stamp, files, backoff, workers=self.workers, bucket=self.bucket
            )
            outcomes = sender.send()
            result.sent, result.failed = outcomes["sent"], outcomes["failed"]
            result.dead_letters += outcomes["dead_letter"]
            result.unknown += outcomes["unknown"]
        mark = _lap(phases, "send", mark)
        self._fold_state(not_sent=result.failed + result.dead_letters + result.unknown)
        self.destination.finalize(sync_context(b, self.sync_id, None))
        _lap(phases, "fold_and_finalize", mark)
        return self._finish(result, started)

    def _gate(self, result: SyncResult, dry_run: bool) -> None:
        """The launch gate (activation.launches.gate): holds back what the launch's stage does not
        allow yet, makes the decisions due (written only in a real run), stamps each record's stage."""
        launch = apply_launch_gates(
            self.con,
            self.binding,
            self.now,
            result.counts.get("segment_rows", 0),
            approval_above=self.policies.approval_above,
            record=not dry_run,
            on_gate_failed=self.on_gate_failed,
        )
        result.launch_stage, result.launch_waiting = launch.stage, launch.waiting
        result.launch_decisions = launch.decisions

    def _fold_state(self, not_sent: int = 0) -> None:
        """Fold delivered records into synced_state (a method, so tests can kill a run here)."""
        fold_state(self.con, self.binding, self.sync_id, self.now, not_sent)

    def _finish(self, result: SyncResult, started: float) -> SyncResult:
        """The sync's records still unknown, the duration, and the run record."""
        result.unknown_outstanding, result.oldest_unknown = reconcile.outstanding(
            self.con, self.binding.sync_key
        )
        result.duration_seconds = time.monotonic() - started
        if self.record_run:
            write_run(self.con, result, self.binding, self.now, started, self.launched_by)
        return result

    def _drop_work_tables(self) -> None:
        """The plan's temp tables can hold a whole segment: dropped after every run, so the next
        sync on the same connection starts with DuckDB's memory free."""
        try:
            for view in _WORK_VIEWS:
                self.con.execute(f"drop view if exists {view}")
            for table in _WORK_TABLES:
                self.con.execute(f"drop table if exists {table}")
        except duckdb.Error as exc:  # never hide the run's own error behind a cleanup one
            log.debug("could not drop the sync's work tables: %s", exc)


def _lap(phases: dict[str, float], phase: str, since: float) -> float:
    """Add the seconds since `since` to `phase` (a phase may be timed in parts); returns now."""
    now = time.monotonic()
    phases[phase] = phases.get(phase, 0.0) + now - since
    return now


def _dead_letter_exhausted(con: duckdb.DuckDBPyConnection, max_attempts: int) -> None:
    """Sends that already failed `max_attempts` times become dead letters instead."""
    con.execute(
        "update _decided set decision = 'dead', reason = ? "
        "where decision = 'send' and ledger_status = 'failed' and attempts >= ?",
        [f"failed {max_attempts} times", max_attempts],
    )


def _skipped_by_reason(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Records not sent, by reason: skipped, held out, deferred, and rejected keys."""
    reasons = dict(
        con.execute(
            "select reason, count(*) from _decided where decision in ('skip', 'holdout', 'defer') group by 1"
        ).fetchall()
    )
    reasons.update(dict(con.execute("select reason, count(*) from _rejects group by 1").fetchall()))
    return {k: int(v) for k, v in sorted(reasons.items())}


def _samples(con: duckdb.DuckDBPyConnection, n: int) -> list[dict[str, Any]]:
    """A dry run's first `n` decisions, for a person to look at."""
    rows = con.execute(
        f"select {', '.join(_SAMPLE_COLUMNS)} from _decided order by decision, customer_id limit ?", [int(n)]
    ).fetchall()
    return [dict(zip(_SAMPLE_COLUMNS, row, strict=True)) for row in rows]
