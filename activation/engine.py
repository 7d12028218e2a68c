"""Run one sync: segment × destination, from plan to delivery ledger.

    result = SyncEngine(con, destination, binding, policies).run(dry_run=False)

1. Resolve what a crashed run left in flight: for destinations whose delivery is
   idempotent (HTTP with Idempotency-Key, table upserts, audience files) those records
   are planned again and resent under the same key; for the rest (SMTP) they become
   `unknown` and are never resent, so nobody gets a message twice.
2. Plan (activation.planner) and apply policies (activation.policies) in the warehouse.
3. Record every decision in the ledger: skipped with a reason, holdout, deferred,
   dead letters for records that failed `max_attempts` times.
4. Stream the send list (spilled to Parquet, read back in batches: bounded memory),
   mark each batch in_flight, send batches concurrently through the destination under
   a token bucket shared by all workers, record sent / failed per record.
5. Fold delivered upserts and deletes into synced_state and write the run record.

Only the calling thread touches the warehouse connection; workers only send.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import tempfile
import time
import uuid
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from activation import planner
from activation.config import PolicyConfig, SyncBinding, resolve_content
from activation.destinations.base import Destination, OutboundRecord, RecordResult, SyncContext
from activation.ledger import SCHEMA, ensure_schema
from activation.policies import apply_policies
from activation.ratelimit import TokenBucket

log = logging.getLogger(__name__)

LOG_COLUMNS = (
    "idempotency_key",
    "sync_key",
    "sync_id",
    "customer_id",
    "action",
    "status",
    "reason",
    "error",
    "attempt",
    "remote_id",
    "channel",
    "campaign",
    "variant",
    "content_version",
    "recorded_at",
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
    unknown: int = 0
    duration_seconds: float = 0.0
    samples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return sum(self.skipped_by_reason.values())

    @property
    def failure_share(self) -> float:
        attempted = self.sent + self.failed + self.dead_letters
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
            "duration_seconds": round(self.duration_seconds, 3),
        }


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
    ):
        self.con, self.destination, self.binding, self.policies = con, destination, binding, policies
        self.workers = max(1, workers)
        self.bucket = TokenBucket(rate_per_second, capacity=max(rate_per_second, destination.max_batch_size))
        self.now = (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None)
        self.customers, self.key_column = customers, key_column
        self.idempotent = bool(getattr(destination, "idempotent_delivery", True))

    # ---- ledger helpers -------------------------------------------------------------------------
    def _append(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self.con.register("_events", table)
        cols = ", ".join(LOG_COLUMNS)
        self.con.execute(f"insert into {SCHEMA}.delivery_log ({cols}) select {cols} from _events")
        self.con.unregister("_events")

    def _append_from_sql(self, select: str) -> None:
        cols = ", ".join(LOG_COLUMNS)
        self.con.execute(f"insert into {SCHEMA}.delivery_log ({cols}) {select}")

    def _events_sql(self, where: str, status: str, reason: str, attempt: str = "attempts") -> str:
        b = self.binding
        return f"""select idempotency_key, '{b.sync_key}', '{self.sync_id}', customer_id, action, {status},
                          {reason}, null, {attempt}, null, {_lit_or_null(b.channel)}, {_lit(b.campaign)}, variant,
                          {_lit(b.content_version)}, timestamp '{self.now:%Y-%m-%d %H:%M:%S.%f}'
                   from _decided where {where}"""

    # ---- the run --------------------------------------------------------------------------------
    def run(self, dry_run: bool = False, sample_size: int = 10) -> SyncResult:
        started = time.monotonic()
        self.sync_id = uuid.uuid4().hex
        b = self.binding
        result = SyncResult(self.sync_id, b.sync_key, dry_run)
        ensure_schema(self.con)
        if not dry_run:
            result.unknown = self._resolve_interrupted()
        planner.load_segment(self.con, b, self.key_column)
        planner.build_plan(self.con, b)
        apply_policies(self.con, b, self.policies, self.now, self.customers)
        result.counts = planner.counts(self.con)
        max_attempts = self.policies.max_attempts
        self.con.execute(
            f"""update _decided set decision = 'dead', reason = 'failed {max_attempts} times'
                where decision = 'send' and ledger_status = 'failed' and attempts >= {max_attempts}"""
        )
        decided = dict(self.con.execute("select decision, count(*) from _decided group by 1").fetchall())
        reasons = dict(
            self.con.execute(
                "select reason, count(*) from _decided where decision in ('skip', 'holdout', 'defer') group by 1"
            ).fetchall()
        )
        reasons.update(
            {r: n for r, n in self.con.execute("select reason, count(*) from _rejects group by 1").fetchall()}
        )
        result.skipped_by_reason = {k: int(v) for k, v in sorted(reasons.items())}
        if dry_run:
            result.samples = [
                dict(
                    zip(
                        ("customer_id", "action", "change", "decision", "reason", "variant"), row, strict=True
                    )
                )
                for row in self.con.execute(
                    f"select customer_id, action, change, decision, reason, variant from _decided "
                    f"order by decision, customer_id limit {int(sample_size)}"
                ).fetchall()
            ]
            result.counts["would_send"] = int(decided.get("send", 0))
            result.duration_seconds = time.monotonic() - started
            self._write_run(result, started)
            return result

        # decisions that are not sends, recorded (holdout once per key)
        self._append_from_sql(self._events_sql("decision = 'skip'", "'skipped'", "reason"))
        self._append_from_sql(self._events_sql("decision = 'defer'", "'deferred'", "reason"))
        self._append_from_sql(
            self._events_sql(
                "decision = 'holdout' and coalesce(ledger_status, '') <> 'holdout'", "'holdout'", "reason"
            )
        )
        self._append_from_sql(self._events_sql("decision = 'dead'", "'dead_letter'", "reason"))
        result.dead_letters = int(decided.get("dead", 0))
        sent, failed, dead = self._send()
        result.sent, result.failed = sent, failed
        result.dead_letters += dead
        self._fold_state()
        finalize = getattr(self.destination, "finalize", None)
        if callable(finalize):
            finalize(self._context(None))
        result.duration_seconds = time.monotonic() - started
        self._write_run(result, started)
        return result

    def _resolve_interrupted(self) -> int:
        """In-flight records of an earlier run that died: resend (idempotent) or mark unknown."""
        if self.idempotent:
            return 0
        b = self.binding
        n = self.con.execute(
            f"select count(*) from {SCHEMA}.delivery_ledger where sync_key = ? and status = 'in_flight'",
            [b.sync_key],
        ).fetchone()[0]
        if n:
            self.con.execute(
                f"""insert into {SCHEMA}.delivery_log ({", ".join(LOG_COLUMNS)})
                    select idempotency_key, sync_key, ?, customer_id, action, 'unknown',
                           'interrupted during send; not resent to avoid a duplicate', null, attempt, null,
                           channel, campaign, variant, content_version, ?
                    from {SCHEMA}.delivery_ledger where sync_key = ? and status = 'in_flight'""",
                [self.sync_id, self.now, b.sync_key],
            )
            log.warning("%s: %s records were in flight when a run died; marked unknown", b.sync_key, n)
        return int(n)

    def _context(self, variant: str | None) -> SyncContext:
        b = self.binding
        content = dict(b.content)
        if variant and variant in b.variants:
            content.update(b.variants[variant])
        content = resolve_content(content)
        return SyncContext(
            sync_id=self.sync_id,
            segment=b.segment,
            destination=b.destination,
            mode=b.mode,
            content_version=b.content_version,
            content=content,
            campaign=b.campaign,
            variant=variant or "",
        )

    def _send(self) -> tuple[int, int, int]:
        spill = Path(tempfile.mkdtemp(prefix="tideline-sync-"))
        try:
            path = spill / "send.parquet"
            self.con.execute(
                f"""copy (select customer_id, idempotency_key, action, fields_json, coalesce(variant, '') as variant,
                                 attempts from _decided where decision = 'send' order by variant, customer_id)
                    to '{path}' (format parquet)"""
            )
            return self._send_file(path)
        finally:
            shutil.rmtree(spill, ignore_errors=True)

    def _send_file(self, path: Path) -> tuple[int, int, int]:
        sent = failed = dead = 0
        size = max(1, int(self.destination.max_batch_size))
        pending: deque[tuple[Future, pa.Table]] = deque()
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="sync") as pool:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=size):
                table = pa.Table.from_batches([batch])
                variants = table.column("variant")
                for variant in dict.fromkeys(variants.to_pylist()):  # one context per variant
                    part = table.filter(pc.equal(variants, variant))
                    self._append(self._events(part, "in_flight", attempt_offset=1))
                    records = [
                        OutboundRecord(c, k, a, orjson.loads(f))
                        for c, k, a, f in zip(
                            part.column("customer_id").to_pylist(),
                            part.column("idempotency_key").to_pylist(),
                            part.column("action").to_pylist(),
                            part.column("fields_json").to_pylist(),
                            strict=True,
                        )
                    ]
                    pending.append(
                        (pool.submit(self._deliver, records, self._context(variant or None)), part)
                    )
                    while len(pending) >= self.workers * 2:
                        s, f, d = self._collect(*pending.popleft())
                        sent, failed, dead = sent + s, failed + f, dead + d
            while pending:
                s, f, d = self._collect(*pending.popleft())
                sent, failed, dead = sent + s, failed + f, dead + d
        return sent, failed, dead

    def _deliver(self, records: list[OutboundRecord], context: SyncContext) -> list[RecordResult]:
        self.bucket.acquire(len(records))
        try:
            return self.destination.send_batch(records, context)
        except Exception as exc:  # the destination as a whole failed: every record retryable
            message = f"{type(exc).__name__}: {str(exc)[:200]}"
            log.warning("%s: batch of %s failed: %s", self.binding.sync_key, len(records), message)
            return [RecordResult(r.idempotency_key, "failed", retryable=True, error=message) for r in records]

    def _collect(self, future: Future, part: pa.Table) -> tuple[int, int, int]:
        results = {r.idempotency_key: r for r in future.result()}
        keys = part.column("idempotency_key").to_pylist()
        status, error, remote = [], [], []
        for key in keys:
            r = results.get(key) or RecordResult(key, "failed", True, "destination returned no result")
            if r.status == "sent":
                status.append("sent")
            elif r.retryable:
                status.append("failed")
            else:
                status.append("dead_letter")
            error.append(r.error)
            remote.append(r.remote_id)
        self._append(self._events(part, status, attempt_offset=1, error=error, remote=remote))
        counts = Counter(status)
        return counts["sent"], counts["failed"], counts["dead_letter"]

    def _events(self, part: pa.Table, status, attempt_offset: int, error=None, remote=None) -> pa.Table:
        n = part.num_rows
        b = self.binding
        statuses = status if isinstance(status, list) else [status] * n
        variants = [v or None for v in part.column("variant").to_pylist()]
        return pa.table(
            {
                "idempotency_key": part.column("idempotency_key"),
                "sync_key": pa.array([b.sync_key] * n),
                "sync_id": pa.array([self.sync_id] * n),
                "customer_id": part.column("customer_id"),
                "action": part.column("action"),
                "status": pa.array(statuses),
                "reason": pa.nulls(n, pa.string()),
                "error": pa.array(error if error is not None else [None] * n, pa.string()),
                "attempt": pc.add(part.column("attempts"), attempt_offset).cast(pa.int32()),
                "remote_id": pa.array(remote if remote is not None else [None] * n, pa.string()),
                "channel": pa.array([b.channel] * n, pa.string()),
                "campaign": pa.array([b.campaign] * n),
                "variant": pa.array(variants, pa.string()),
                "content_version": pa.array([b.content_version] * n),
                "recorded_at": pa.array([self.now] * n, pa.timestamp("us")),
            }
        )

    def _fold_state(self) -> None:
        """Delivered upserts and deletes (this run, or an earlier one that died before folding) → synced_state."""
        if self.binding.mode == "message":
            return
        b = self.binding
        delivered = f"""select p.customer_id, p.action, p.field_hash from _plan as p
                        join {SCHEMA}.delivery_ledger as l on l.idempotency_key = p.idempotency_key
                        where l.status = 'sent'"""
        self.con.execute(f"create or replace temp table _delivered as {delivered}")
        self.con.execute(
            f"delete from {SCHEMA}.synced_state where sync_key = ? and customer_id in "
            f"(select customer_id from _delivered)",
            [b.sync_key],
        )
        self.con.execute(
            f"""insert into {SCHEMA}.synced_state
                select ?, customer_id, field_hash, ? from _delivered where action = 'upsert'""",
            [b.sync_key, self.now],
        )

    def _write_run(self, result: SyncResult, started: float) -> None:
        b = self.binding
        c = result.counts
        self.con.execute(
            f"""insert into {SCHEMA}.sync_runs values
                (?, ?, ?, ?, ?, ?, ?, now()::timestamp, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [
                result.sync_id,
                b.sync_key,
                b.segment,
                b.destination,
                b.mode,
                result.dry_run,
                self.now,
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
            ],
        )


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _lit_or_null(value: str | None) -> str:
    return "null" if value is None else _lit(value)
