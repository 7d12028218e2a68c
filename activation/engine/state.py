"""What a sync run leaves behind besides the ledger: the synced state and the run record.

- `fold_state`: delivered upserts and deletes go into `tideline_sync.synced_state`, which the
  next run's planner diffs against (so only what changed is sent again);
- `SyncResult`: the run's figures, returned to the caller (Dagster metadata, checks, the CLI);
- `write_run`: the same figures as one row of `tideline_sync.sync_runs`.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from typing import Any

import duckdb

from activation.config import SyncBinding
from activation.ledger import SCHEMA

RUN_COLUMNS = (
    "sync_id",
    "sync_key",
    "segment",
    "destination",
    "mode",
    "dry_run",
    "started_at",
    "finished_at",
    "segment_rows",
    "rejected_keys",
    "planned",
    "added",
    "changed",
    "removed",
    "sent",
    "skipped",
    "skipped_by_reason",
    "failed",
    "dead_letters",
    "unknown",
    "duration_seconds",
    "status",
    "launched_by",
    "campaign",
    "content_version",
    "launch_stage",
)


@dataclass
class SyncResult:
    sync_id: str
    sync_key: str
    dry_run: bool
    counts: dict[str, int] = field(default_factory=dict)
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    failed: int = 0
    dead_letters: int = 0
    unknown: int = 0  # records this run left (or found, after a crash) possibly delivered
    confirmed: int = 0  # unknown records of earlier runs confirmed delivered (now sent)
    released: int = 0  # unknown records of earlier runs found undelivered (planned again)
    unknown_outstanding: int = 0  # the sync's records still unknown after the run: a person decides
    oldest_unknown: dt.datetime | None = None  # when the oldest of them became unknown
    backoff_until: dt.datetime | None = None  # sends held until then (the destination's Retry-After)
    duration_seconds: float = 0.0
    # where the run's time went, in order: resolve (crashed runs, unknown records), plan_and_policies,
    # record_decisions, send, fold_and_finalize (a dry run has the first two only)
    phase_seconds: dict[str, float] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    launch_stage: str | None = None  # a staged launch's stage this run (activation.launches)
    launch_waiting: dict[str, int] = field(default_factory=dict)  # held by the launch, by reason
    launch_decisions: list[str] = field(default_factory=list)  # decisions this run made, in words
    # a dry run: how long sending what it would send is expected to take (activation.engine.estimate)
    estimated_send_seconds: float | None = None
    estimate_basis: str | None = None

    @property
    def skipped(self) -> int:
        return sum(self.skipped_by_reason.values())

    @property
    def failure_share(self) -> float:
        attempted = self.sent + self.failed + self.dead_letters + self.unknown
        return (self.failed + self.dead_letters) / attempted if attempted else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "sync_id": self.sync_id,
            "sync_key": self.sync_key,
            "dry_run": self.dry_run,
            **self.counts,
            "sent": self.sent,
            "skipped": self.skipped,
            "skipped_by_reason": self.skipped_by_reason,
            "failed": self.failed,
            "dead_letters": self.dead_letters,
            "unknown": self.unknown,
            "confirmed": self.confirmed,
            "released": self.released,
            "unknown_outstanding": self.unknown_outstanding,
            "backoff_until": self.backoff_until.isoformat() if self.backoff_until else None,
            "duration_seconds": round(self.duration_seconds, 3),
            "phase_seconds": {phase: round(seconds, 3) for phase, seconds in self.phase_seconds.items()},
            "launch_stage": self.launch_stage,
            "launch_waiting": self.launch_waiting,
            "launch_decisions": self.launch_decisions,
            **(
                {"estimated_send_seconds": self.estimated_send_seconds, "estimate_basis": self.estimate_basis}
                if self.dry_run
                else {}
            ),
        }


def fold_state(
    con: duckdb.DuckDBPyConnection, binding: SyncBinding, sync_id: str, now: dt.datetime, not_sent: int = 0
) -> None:
    """Delivered upserts and deletes → synced_state: this run's sends that were not failed or
    unknown (`not_sent` of them were: only then is the ledger looked up), and those an earlier
    run sent (or that were confirmed since) but not folded yet (`sent` in the ledger, not in the
    state). Each folded customer's generation goes up by one (a delete's goes to removed_state),
    so their next change is keyed apart from every earlier one. Message syncs keep no state."""
    if binding.mode == "message":
        return
    fields = "fields_json" if binding.mode == "mirror" else "null as fields_json"
    failed = (  # only looked up when something was not sent: the common run skips a scan of the log
        f"""and idempotency_key not in (
                select idempotency_key from {SCHEMA}.delivery_log
                where sync_key = ? and sync_id = ? and status in ('failed', 'dead_letter', 'unknown'))"""
        if not_sent
        else ""
    )
    columns = f"customer_id, action, change, field_hash, {fields}, coalesce(generation, 0) + 1 as generation"
    con.execute(
        f"""create or replace temp table _delivered as
            select {columns} from _cand where ledger_status = 'sent'
            union all
            select {columns} from _decided
            where decision = 'send' {failed}""",
        [binding.sync_key, sync_id] if not_sent else [],
    )
    con.execute("begin transaction")  # a run killed mid-fold leaves the old state whole: the rerun refolds
    try:
        _replace_state(con, binding, now)
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")


def _replace_state(con: duckdb.DuckDBPyConnection, binding: SyncBinding, now: dt.datetime) -> None:
    """_delivered's customers: their rows of synced_state (and removed_state) replaced."""
    con.execute(
        f"""delete from {SCHEMA}.synced_state where sync_key = ? and customer_id in
            (select customer_id from _delivered where change <> 'added')""",
        [binding.sync_key],
    )
    con.execute(
        f"""insert into {SCHEMA}.synced_state (sync_key, customer_id, field_hash, synced_at, fields_json, generation)
            select ?, customer_id, field_hash, ?, fields_json, generation from _delivered where action = 'upsert'""",
        [binding.sync_key, now],
    )
    if binding.mode == "mirror":  # a delivered delete leaves its generation for the customer's return
        con.execute(
            f"""delete from {SCHEMA}.removed_state where sync_key = ? and customer_id in
                (select customer_id from _delivered)""",
            [binding.sync_key],
        )
        con.execute(
            f"""insert into {SCHEMA}.removed_state (sync_key, customer_id, generation, removed_at)
                select ?, customer_id, generation, ? from _delivered where action = 'delete'""",
            [binding.sync_key, now],
        )


def write_run(
    con: duckdb.DuckDBPyConnection,
    result: SyncResult,
    binding: SyncBinding,
    now: dt.datetime,
    started: float,
    launched_by: str | None = None,
) -> None:
    """The run record: one row of sync_runs (`started`: the run's time.monotonic() at its start;
    `launched_by`: who or what started the run, e.g. schedule:<name>, cli:<person>)."""
    c = result.counts
    con.execute(
        f"""insert into {SCHEMA}.sync_runs ({", ".join(RUN_COLUMNS)}) values
            (?, ?, ?, ?, ?, ?, ?, now()::timestamp, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [
            result.sync_id,
            binding.sync_key,
            binding.segment,
            binding.destination,
            binding.mode,
            result.dry_run,
            now,
            c.get("segment_rows", 0),
            c.get("rejected_keys", 0),
            c.get("planned", 0),
            c.get("added", 0),
            c.get("changed", 0),
            c.get("removed", 0),
            result.sent,
            result.skipped,
            json.dumps(result.skipped_by_reason),
            result.failed,
            result.dead_letters,
            result.unknown,
            time.monotonic() - started,
            "dry_run" if result.dry_run else "done",
            launched_by,
            binding.campaign,
            binding.content_version,
            result.launch_stage,
        ],
    )
