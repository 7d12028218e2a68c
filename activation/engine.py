"""Run one sync: segment × destination, from plan to delivery ledger.

    result = SyncEngine(con, destination, binding, policies).run(dry_run=False)

1. Resolve what a crashed run left in flight: for destinations whose delivery is
   idempotent (per-record keys the receiver dedupes on, table upserts, audience files)
   nothing was recorded, so those records are planned again and resent under the same key;
   for the rest (SMTP) the delivery journal decides, and what it cannot becomes `unknown`,
   never resent, so nobody gets a message twice.
2. Settle `unknown` records of earlier runs with whatever can answer (activation.reconcile:
   the destination's delivery evidence, provider webhooks): confirmed ones become `sent`,
   undelivered ones `released` (planned again); the rest stay unknown and are reported.
3. Plan (activation.planner) and apply policies (activation.policies) in the warehouse.
4. Record every decision in the ledger: skipped with a reason, holdout, deferred,
   dead letters for records that failed `max_attempts` times. If the destination's last
   answer in an earlier run asked to wait (Retry-After), the run waits (up to
   `max_backoff_wait_seconds`) or defers its sends until then (reason `retry_after`).
5. Stream the send list from the warehouse in Arrow windows (bounded memory), send
   batches concurrently through the destination under a token bucket shared by all
   workers, and record sent / failed / unknown per record, one ledger insert per window
   (see _send). For idempotent destinations each batch's deliveries also go to an outcome
   journal as soon as the batch is back, so a crash resends only the batches in flight.
6. Fold delivered upserts and deletes into synced_state, finalize the destination (for
   audience files also what a crashed run left unfinalised) and write the run record.

The calling thread owns the warehouse connection; a writer thread appends outcomes on a
second connection (a cursor of the same database); workers send (and journal).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import queue
import re
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from activation import planner, reconcile
from activation.config import PolicyConfig, SyncBinding, resolve_content
from activation.destinations.base import BatchResults, Destination, EncodedBatch, OutboundRecord, SyncContext
from activation.ledger import SCHEMA, ensure_schema
from activation.policies import apply_policies
from activation.ratelimit import TokenBucket
from activation.reconcile import DeliveryEvidence

log = logging.getLogger(__name__)

WINDOW_RECORDS = 32_768  # records per ledger write for idempotent destinations
MAX_BACKOFF_SECONDS = 86_400  # a Retry-After longer than a day is taken as a day

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
    unknown: int = 0  # records this run left (or found, after a crash) possibly delivered
    confirmed: int = 0  # unknown records of earlier runs confirmed delivered (now sent)
    released: int = 0  # unknown records of earlier runs found undelivered (planned again)
    unknown_outstanding: int = 0  # the sync's records still unknown after the run: a person decides
    oldest_unknown: dt.datetime | None = None  # when the oldest of them became unknown
    backoff_until: dt.datetime | None = None  # sends held until then (the destination's Retry-After)
    duration_seconds: float = 0.0
    samples: list[dict[str, Any]] = field(default_factory=list)

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
        journal_dir: Path | None = None,
        evidence: Sequence[DeliveryEvidence] = (),
        max_backoff_wait_seconds: float = 120.0,
    ):
        """`journal_dir`: where the delivery journal and the destination's "not before" file live
        (default: next to the warehouse file). `evidence`: more sources for settling unknown
        records, after the destination's own (e.g. reconcile.ProviderEvents(landing_dir)).
        `max_backoff_wait_seconds`: a Retry-After from an earlier run shorter than this is
        waited out; a longer one defers the run's sends."""
        self.con, self.destination, self.binding, self.policies = con, destination, binding, policies
        self.journal_dir = journal_dir
        self._journal: DeliveryJournal | None = None
        self.workers = max(1, workers)
        self.bucket = TokenBucket(rate_per_second, capacity=max(rate_per_second, destination.max_batch_size))
        self.now = (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None)
        self.customers, self.key_column = customers, key_column
        self.idempotent = destination.idempotent_delivery
        self.evidence = [*destination.delivery_evidence(), *evidence]
        self.max_backoff_wait_seconds = max_backoff_wait_seconds
        self._not_before = 0.0  # unix time the destination's last Retry-After of this run points at
        self._not_before_lock = threading.Lock()

    # ---- ledger helpers -------------------------------------------------------------------------
    def _insert_outcomes(self, con: duckdb.DuckDBPyConnection, events: pa.Table) -> None:
        """Append per-record events (idempotency_key, customer_id, action, status, error, attempt,
        remote_id, variant) on `con`; the run's constants are filled in by the insert itself."""
        if events.num_rows == 0:
            return
        b = self.binding
        con.register("_events", events)
        try:
            con.execute(
                f"""insert into {SCHEMA}.delivery_log ({", ".join(LOG_COLUMNS)})
                    select idempotency_key, {_lit(b.sync_key)}, {_lit(self.sync_id)}, customer_id, action,
                           status, null, error, attempt, remote_id, {_lit_or_null(b.channel)}, {_lit(b.campaign)},
                           nullif(variant, ''), {_lit(b.content_version)}, {self._now_sql}
                    from _events"""
            )
        finally:
            con.unregister("_events")

    def _append_from_sql(self, select: str) -> None:
        cols = ", ".join(LOG_COLUMNS)
        self.con.execute(f"insert into {SCHEMA}.delivery_log ({cols}) {select}")

    @property
    def _now_sql(self) -> str:
        return f"timestamp '{self.now:%Y-%m-%d %H:%M:%S.%f}'"

    def _events_sql(
        self, where: str, status: str, reason: str, attempt: str = "attempts", extra: str = ""
    ) -> str:
        b = self.binding
        return f"""select idempotency_key, {_lit(b.sync_key)}, '{self.sync_id}', customer_id, action, {status},
                          {reason}, null, {attempt}, null, {_lit_or_null(b.channel)}, {_lit(b.campaign)}, variant,
                          {_lit(b.content_version)}, {self._now_sql}{extra}
                   from _decided where {where}"""

    # ---- the run --------------------------------------------------------------------------------
    def run(self, dry_run: bool = False, sample_size: int = 10) -> SyncResult:
        try:
            return self._run(dry_run, sample_size)
        finally:
            self._drop_work_tables()

    def _drop_work_tables(self) -> None:
        """The plan's temp tables can hold a whole segment: dropped after every run, so the next
        sync on the same connection starts with DuckDB's memory free."""
        try:
            for view in ("_plan", "_cand"):
                self.con.execute(f"drop view if exists {view}")
            for table in ("_delivered", "_decided", "_latest", "_diff", "_rejects"):
                self.con.execute(f"drop table if exists {table}")
        except duckdb.Error as exc:  # never hide the run's own error behind a cleanup one
            log.debug("could not drop the sync's work tables: %s", exc)

    def _run(self, dry_run: bool, sample_size: int) -> SyncResult:
        started = time.monotonic()
        self.sync_id = uuid.uuid4().hex
        b = self.binding
        result = SyncResult(self.sync_id, b.sync_key, dry_run)
        ensure_schema(self.con)
        if not dry_run:
            result.unknown = self._resolve_interrupted()
            settled = reconcile.reconcile(
                self.con, b.sync_key, self.evidence, sync_id=self.sync_id, now=self.now
            )
            result.confirmed, result.released = settled.confirmed, settled.released
        planner.plan(self.con, b, self.key_column)
        apply_policies(self.con, b, self.policies, self.now, self.customers)
        result.counts = planner.counts(self.con, b)
        max_attempts = self.policies.max_attempts
        self.con.execute(
            f"""update _decided set decision = 'dead', reason = 'failed {max_attempts} times'
                where decision = 'send' and ledger_status = 'failed' and attempts >= {max_attempts}"""
        )
        wait = 0.0
        if not dry_run:
            wait, result.backoff_until = self._hold_for_backoff()
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
            result.unknown_outstanding, result.oldest_unknown = reconcile.outstanding(self.con, b.sync_key)
            result.duration_seconds = time.monotonic() - started
            self._write_run(result, started)
            return result

        # decisions that are not sends, recorded (holdout once per key); none, no statement
        if decided.get("skip"):
            self._append_from_sql(self._events_sql("decision = 'skip'", "'skipped'", "reason"))
        if decided.get("defer"):
            self.con.execute(  # with when quiet hours end for the customer (or the Retry-After)
                f"""insert into {SCHEMA}.delivery_log ({", ".join(LOG_COLUMNS)}, not_before)
                    {self._events_sql("decision = 'defer'", "'deferred'", "reason", extra=", not_before")}"""
            )
        if decided.get("holdout"):
            self._append_from_sql(
                self._events_sql(
                    "decision = 'holdout' and coalesce(ledger_status, '') <> 'holdout'", "'holdout'", "reason"
                )
            )
        if decided.get("dead"):
            self._append_from_sql(self._events_sql("decision = 'dead'", "'dead_letter'", "reason"))
        result.dead_letters = int(decided.get("dead", 0))
        if decided.get("send", 0):
            if wait > 0:
                log.info("%s: waiting %.1fs: the destination asked for it (Retry-After)", b.sync_key, wait)
                time.sleep(wait)
            outcomes = self._send()
            result.sent, result.failed = outcomes["sent"], outcomes["failed"]
            result.dead_letters += outcomes["dead_letter"]
            result.unknown += outcomes["unknown"]
        self._fold_state(not_sent=result.failed + result.dead_letters + result.unknown)
        self.destination.finalize(self._context(None))
        result.unknown_outstanding, result.oldest_unknown = reconcile.outstanding(self.con, b.sync_key)
        result.duration_seconds = time.monotonic() - started
        self._write_run(result, started)
        return result

    # ---- the destination's Retry-After, across runs ----------------------------------------------
    def _state_dir(self) -> Path:
        """Where this warehouse's sync journals and backoff files live: next to the warehouse file
        (so a rerun on the same warehouse finds them), or in the temp directory for an in-memory
        warehouse; `journal_dir` overrides it."""
        if self.journal_dir is not None:
            return self.journal_dir
        row = self.con.execute(
            "select path from duckdb_databases() where database_name = current_database()"
        ).fetchone()
        if row and row[0]:
            return Path(row[0] + ".sync-journal")
        return Path(tempfile.gettempdir()) / "tideline-sync-journal"

    def _backoff_path(self) -> Path:
        """The destination's "not before" file: one per destination, whatever the sync."""
        return self._state_dir() / (_file_stem(self.binding.destination) + ".not-before")

    def _hold_for_backoff(self) -> tuple[float, dt.datetime | None]:
        """(seconds to wait before sending, when sends are held until) from the Retry-After the
        destination gave on the last try of an earlier run. A short wait is waited out; a longer
        one defers this run's sends (`deferred`, reason `retry_after`, not_before that time)."""
        path = self._backoff_path()
        try:
            until = float(path.read_text().strip())
        except (OSError, ValueError):  # none, or unreadable: nothing to wait for
            return 0.0, None
        wait = until - time.time()
        if wait <= 0:
            path.unlink(missing_ok=True)
            return 0.0, None
        when = dt.datetime.fromtimestamp(until, dt.UTC).replace(tzinfo=None)
        if wait <= self.max_backoff_wait_seconds:
            return wait, when
        held = self.con.execute(
            """update _decided set decision = 'defer', reason = 'retry_after', not_before = ?
               where decision = 'send'""",
            [when],
        ).fetchone()
        log.warning(
            "%s: %s sends deferred until %s UTC: the destination asked to wait (Retry-After)",
            self.binding.sync_key,
            held[0] if held else 0,
            f"{when:%Y-%m-%d %H:%M:%S}",
        )
        return 0.0, when

    def _note_retry_after(self, seconds: float) -> None:
        with self._not_before_lock:
            self._not_before = max(self._not_before, time.time() + min(seconds, MAX_BACKOFF_SECONDS))

    def _save_backoff(self) -> None:
        """Keep the latest Retry-After of this run's last tries for the next run."""
        with self._not_before_lock:
            until = self._not_before
        if until <= time.time():
            return
        path = self._backoff_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(f"{until:.3f}\n")
        os.replace(tmp, path)

    def _journal_path(self) -> Path:
        """The delivery journal of this sync (see _state_dir)."""
        return self._state_dir() / (_file_stem(self.binding.sync_key) + ".journal")

    def _resolve_interrupted(self) -> int:
        """What an earlier run that died left unrecorded. Idempotent destinations: the batches its
        outcome journal holds (see OutcomeJournal) are recorded `sent`, so only the batches that
        were in flight are planned and sent again (under the same keys). The others (SMTP): the
        delivery journal decides per in_flight record (see DeliveryJournal): accepted → `sent`,
        never handed over → `released` (planned again), the rest → `unknown`, never resent, so
        nobody gets a message twice. Returns the number of unknown records."""
        if self.idempotent:
            self._resolve_outcome_journal()
            return 0
        b = self.binding
        in_flight = f"""select * from {SCHEMA}.delivery_ledger where sync_key = {_lit(b.sync_key)}
                        and status = 'in_flight'"""
        path = self._journal_path()
        if path.exists():
            attempted, sent = DeliveryJournal.read(path)
            keys = list(attempted | sent.keys())
            self.con.register(
                "_journal",
                pa.table(
                    {
                        "idempotency_key": pa.array(keys, pa.string()),
                        "remote_id": pa.array([sent.get(k) for k in keys], pa.string()),
                        "accepted": pa.array([k in sent for k in keys], pa.bool_()),
                    }
                ),
            )
            try:
                outcome = """case when j.accepted then 'sent' when j.idempotency_key is null then 'released'
                                  else 'unknown' end"""
                self.con.execute(
                    f"""insert into {SCHEMA}.delivery_log ({", ".join(LOG_COLUMNS)})
                        select l.idempotency_key, l.sync_key, ?, l.customer_id, l.action, {outcome},
                               case {outcome}
                                   when 'sent' then 'accepted before an interrupted run died (delivery journal)'
                                   when 'released' then 'never handed over before an interrupted run died; planned again'
                                   else 'interrupted while being handed over; not resent to avoid a duplicate'
                               end,
                               null, l.attempt, j.remote_id, l.channel, l.campaign, l.variant, l.content_version, ?
                        from ({in_flight}) as l
                        left join _journal as j on l.idempotency_key = cast(j.idempotency_key as uuid)""",
                    [self.sync_id, self.now],
                )
            finally:
                self.con.unregister("_journal")
            path.unlink()
        else:  # no journal (e.g. rerun elsewhere): whatever was in flight may have gone out
            self.con.execute(
                f"""insert into {SCHEMA}.delivery_log ({", ".join(LOG_COLUMNS)})
                    select idempotency_key, sync_key, ?, customer_id, action, 'unknown',
                           'interrupted during send; not resent to avoid a duplicate', null, attempt, null,
                           channel, campaign, variant, content_version, ?
                    from ({in_flight})""",
                [self.sync_id, self.now],
            )
        n = self.con.execute(
            f"""select count(*) from {SCHEMA}.delivery_log where sync_id = ? and status = 'unknown'""",
            [self.sync_id],
        ).fetchone()[0]
        if n:
            log.warning(
                "%s: %s records were being handed over when a run died; marked unknown", b.sync_key, n
            )
        return int(n)

    def _outcome_journal_path(self) -> Path:
        return self._state_dir() / (_file_stem(self.binding.sync_key) + ".outcomes")

    def _resolve_outcome_journal(self) -> None:
        """Record as `sent` what a run that died had delivered but not yet written to the ledger."""
        path = self._outcome_journal_path()
        if not path.exists():
            return
        sent, meta = OutcomeJournal.read(path)
        if sent.num_rows:
            self.con.register("_journal", sent)
            try:
                self.con.execute(
                    f"""insert into {SCHEMA}.delivery_log ({", ".join(LOG_COLUMNS)})
                        select cast(j.idempotency_key as uuid), ?, ?, j.customer_id, j.action, 'sent',
                               'delivered before an interrupted run died (outcome journal)', null, j.attempt,
                               j.remote_id, ?, ?, nullif(j.variant, ''), ?, ?
                        from _journal as j
                        where cast(j.idempotency_key as uuid) not in (
                            select idempotency_key from {SCHEMA}.delivery_log where sync_id = ?)""",
                    [
                        self.binding.sync_key,
                        meta["sync_id"],
                        meta["channel"] or None,
                        meta["campaign"],
                        meta["content_version"],
                        dt.datetime.fromisoformat(meta["recorded_at"]),
                        meta["sync_id"],
                    ],
                )
            finally:
                self.con.unregister("_journal")
            log.info(
                "%s: %s records an interrupted run delivered are recorded as sent",
                self.binding.sync_key,
                sent.num_rows,
            )
        path.unlink()

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
            on_attempt=self._journal.attempt if self._journal is not None else None,
            on_sent=self._journal.record if self._journal is not None else None,
        )

    # ---- sending --------------------------------------------------------------------------------
    def _send(self) -> Counter[str]:
        """Stream the send list from the warehouse window by window and send it; returns the
        number of records per outcome (sent, failed, dead_letter, unknown).

        A window (WINDOW_RECORDS records for idempotent destinations, one batch otherwise)
        is read as an Arrow batch, split into destination batches for the worker pool, and its
        outcomes are written to the ledger in one insert once all its batches are back. Two
        windows (or enough for every worker) are in flight at once and ledger inserts run on
        their own connection in a writer thread, so workers do not wait for the ledger and memory
        stays bounded by the window size, whatever the segment size. For idempotent destinations
        each worker also appends its batch's deliveries to the outcome journal as soon as the
        batch is back (no fsync: it has to survive the process, not the machine), so a crash
        resends only the batches in flight, never the rest of the window; the journal goes once
        the ledger holds everything. For a destination whose delivery is not idempotent, each
        window is marked in_flight (committed) before it is sent, and the delivery journal
        follows each record.
        """
        self._encoded = self.destination.encoded_batches
        record_json = (
            """, '{"customer_id":' || to_json(customer_id) || ',"idempotency_key":"'
                  || cast(idempotency_key as varchar) || '","action":"' || action || '","fields":'
                  || fields_json || '}' as record_json"""
            if self._encoded
            else ", fields_json"
        )
        size = max(1, int(self.destination.max_batch_size))
        window = size if not self.idempotent else max(size, (WINDOW_RECORDS // size) * size)
        depth = max(2, -(-self.workers * 2 * size // window))
        self._contexts: dict[str, SyncContext] = {}
        totals: Counter[str] = Counter()
        pending: deque[tuple[pa.Table, list[Future]]] = deque()
        writer = _LedgerWriter(self.con.cursor(), self._insert_outcomes)
        outcomes: OutcomeJournal | None = None
        if self.idempotent:
            outcomes = OutcomeJournal(self._outcome_journal_path(), self._journal_meta())
        else:
            self._journal = DeliveryJournal(self._journal_path())

        def finish() -> None:
            part, futures = pending.popleft()
            totals.update(self._finish_window(part, [f.result() for f in futures], writer))

        order = "order by variant" if self.binding.variants else ""
        reader = self.con.execute(
            f"""select coalesce(variant, '') as variant, customer_id, cast(idempotency_key as varchar) as idempotency_key,
                       action, attempts {record_json}
                from _decided where decision = 'send' {order}"""
        ).fetch_record_batch(window)
        try:
            with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="sync") as pool:
                for batch in reader:
                    part = pa.Table.from_batches([batch])
                    if not self.idempotent:
                        writer.write_now(self._outcomes(part, ["in_flight"] * part.num_rows))
                    futures = [
                        pool.submit(self._deliver_and_journal, chunk, variant, outcomes)
                        for chunk, variant in self._chunks(part, size)
                    ]
                    pending.append((part, futures))
                    while len(pending) >= depth:
                        finish()
                while pending:
                    finish()
        finally:
            reader.close()
            self._save_backoff()
            try:
                writer.close()
            finally:
                journal, self._journal = self._journal, None
                for open_journal in (journal, outcomes):
                    if open_journal is not None:
                        open_journal.close()
        # every outcome is in the ledger now, so the journals are spent; on an error they stay, and
        # the next run resolves this run's records from them
        for spent in (journal, outcomes):
            if spent is not None:
                spent.path.unlink(missing_ok=True)
        return totals

    def _journal_meta(self) -> dict[str, str]:
        """The run's constants, which the outcome journal carries for the run that resolves it."""
        b = self.binding
        return {
            "sync_id": self.sync_id,
            "channel": b.channel or "",
            "campaign": b.campaign,
            "content_version": b.content_version,
            "recorded_at": self.now.isoformat(),
        }

    def _deliver_and_journal(
        self, chunk: pa.Table, variant: str, outcomes: OutcomeJournal | None
    ) -> BatchResults:
        """Send one batch (in a worker); journal what was delivered; note a Retry-After."""
        results = self._deliver(chunk, variant)
        if results.retry_after is not None:
            self._note_retry_after(results.retry_after)
        if outcomes is not None:
            outcomes.delivered(chunk, results)
        return results

    def _chunks(self, part: pa.Table, size: int) -> list[tuple[pa.Table, str]]:
        """Split a window into batches of at most `size` records, each of one variant."""
        runs: list[tuple[int, int, str]] = []
        if self.binding.variants:
            variants = part.column("variant").to_pylist()
            start = 0
            for i in range(1, len(variants) + 1):
                if i == len(variants) or variants[i] != variants[start]:
                    runs.append((start, i, variants[start]))
                    start = i
        else:
            runs.append((0, part.num_rows, ""))
        return [
            (part.slice(offset, min(size, end - offset)), variant)
            for start, end, variant in runs
            for offset in range(start, end, size)
        ]

    def _context_for(self, variant: str) -> SyncContext:
        context = self._contexts.get(variant)
        if context is None:  # templates are read once per variant, not once per batch
            context = self._contexts[variant] = self._context(variant or None)
        return context

    def _deliver(self, chunk: pa.Table, variant: str) -> BatchResults:
        n = chunk.num_rows
        keys = chunk.column("idempotency_key").to_pylist()
        self.bucket.acquire(n)
        try:
            context = self._context_for(variant)
            if self._encoded:
                records_json = b"[" + _joined(chunk.column("record_json"), ",") + b"]"
                batch_key = hashlib.sha256(
                    _joined(chunk.column("idempotency_key"), "\n", sort=True)
                ).hexdigest()
                results = self.destination.send_encoded(EncodedBatch(keys, records_json, batch_key), context)
            else:
                records = [
                    OutboundRecord(c, k, a, orjson.loads(f))
                    for c, k, a, f in zip(
                        chunk.column("customer_id").to_pylist(),
                        keys,
                        chunk.column("action").to_pylist(),
                        chunk.column("fields_json").to_pylist(),
                        strict=True,
                    )
                ]
                results = BatchResults.from_records(keys, self.destination.send_batch(records, context))
            if len(results) != n:
                raise RuntimeError(f"destination returned {len(results)} results for {n} records")
            return results
        except Exception as exc:  # the destination as a whole failed: every record retryable
            message = f"{type(exc).__name__}: {str(exc)[:200]}"
            log.warning("%s: batch of %s failed: %s", self.binding.sync_key, n, message)
            return BatchResults.uniform(n, "failed", retryable=True, error=message)

    def _finish_window(
        self, part: pa.Table, results: list[BatchResults], writer: _LedgerWriter
    ) -> Counter[str]:
        """Queue the window's ledger events: sent, unknown (it went out and may have arrived: never
        resent), failed (retryable) or dead_letter (not retryable); returns their counts."""
        status, error, remote = [], [], []
        counts: Counter[str] = Counter()
        for r in results:  # in the order of the window's chunks, which is the window's row order
            n = len(r)
            if r.status.count("sent") == n:  # the common case, without a loop over records
                status.append(pa.repeat(pa.scalar("sent"), n))
                counts["sent"] += n
            else:
                mapped = [
                    s if s in ("sent", "unknown") else "failed" if retry else "dead_letter"
                    for s, retry in zip(r.status, r.retryable, strict=True)
                ]
                counts.update(mapped)
                status.append(pa.array(mapped, pa.string()))
            error.append(_strings(r.error))
            remote.append(_strings(r.remote_id))
        writer.write(self._outcomes(part, _concat(status), _concat(error), _concat(remote)))
        return counts

    @staticmethod
    def _outcomes(part: pa.Table, status, error=None, remote=None) -> pa.Table:
        n = part.num_rows
        if isinstance(status, list):
            status = pa.array(status, pa.string())
        return pa.table(
            {
                "idempotency_key": part.column("idempotency_key"),
                "customer_id": part.column("customer_id"),
                "action": part.column("action"),
                "variant": part.column("variant"),
                "status": status,
                "error": error if error is not None else pa.nulls(n, pa.string()),
                "attempt": pc.add(part.column("attempts"), 1).cast(pa.int32()),
                "remote_id": remote if remote is not None else pa.nulls(n, pa.string()),
            }
        )

    # ---- state ----------------------------------------------------------------------------------
    def _fold_state(self, not_sent: int = 0) -> None:
        """Delivered upserts and deletes → synced_state: this run's sends that were not failed or
        unknown, and those an earlier run sent (or that were confirmed since) but not folded yet
        (`sent` in the ledger, not in the state)."""
        if self.binding.mode == "message":
            return
        b = self.binding
        fields = "fields_json" if b.mode == "mirror" else "null as fields_json"
        failed = (  # only looked up when something was not sent: the common run skips a scan of the log
            f"""and idempotency_key not in (
                    select idempotency_key from {SCHEMA}.delivery_log
                    where sync_key = {_lit(b.sync_key)} and sync_id = {_lit(self.sync_id)}
                      and status in ('failed', 'dead_letter', 'unknown'))"""
            if not_sent
            else ""
        )
        self.con.execute(
            f"""create or replace temp table _delivered as
                select customer_id, action, change, field_hash, {fields} from _cand where ledger_status = 'sent'
                union all
                select customer_id, action, change, field_hash, {fields} from _decided
                where decision = 'send' {failed}"""
        )
        self.con.execute(
            f"""delete from {SCHEMA}.synced_state where sync_key = ? and customer_id in
                (select customer_id from _delivered where change <> 'added')""",
            [b.sync_key],
        )
        self.con.execute(
            f"""insert into {SCHEMA}.synced_state (sync_key, customer_id, field_hash, synced_at, fields_json)
                select ?, customer_id, field_hash, ?, fields_json from _delivered where action = 'upsert'""",
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


def _joined(column: pa.ChunkedArray | pa.Array, separator: str, sort: bool = False) -> bytes:
    """The strings of an Arrow column joined by `separator`, as UTF-8 bytes (joined in Arrow)."""
    values = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if sort:
        values = values.take(pc.sort_indices(values))
    offsets = pa.array([0, len(values)], pa.int32())
    return pc.binary_join(pa.ListArray.from_arrays(offsets, values), separator)[0].as_buffer().to_pybytes()


def _concat(arrays: list[pa.Array]) -> pa.Array:
    return arrays[0] if len(arrays) == 1 else pa.concat_arrays(arrays)


def _file_stem(name: str) -> str:
    """A name made safe as a file name (sync keys and destination names are mostly safe already)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _strings(values: list[str | None]) -> pa.Array:
    if values.count(None) == len(values):
        return pa.nulls(len(values), pa.string())
    return pa.array(values, pa.string())


class OutcomeJournal:
    """An append-only Arrow IPC stream of the records an idempotent destination accepted in the
    current run: one record batch (idempotency_key, customer_id, action, variant, attempt,
    remote_id) per destination batch, written as soon as the batch is back; the run's constants
    (sync_id, channel, campaign, content_version, recorded_at) are in the schema's metadata.

    Outcomes reach the ledger a window at a time; a run that dies in between leaves the journal
    behind, and the next run records its batches as `sent` instead of sending them again, so a
    crash costs a resend of the batches in flight only. Written without fsync: a killed process
    loses nothing the OS already has, and a lost journal (a machine crash) only means a resend,
    which the receiver deduplicates. A torn last batch is ignored."""

    SCHEMA = pa.schema(
        [
            ("idempotency_key", pa.string()),
            ("customer_id", pa.string()),
            ("action", pa.string()),
            ("variant", pa.string()),
            ("attempt", pa.int32()),
            ("remote_id", pa.string()),
        ]
    )

    def __init__(self, path: Path, meta: dict[str, str]):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open("wb", buffering=0)
        self._lock = threading.Lock()
        self._writer = pa.ipc.new_stream(self._fh, self.SCHEMA.with_metadata(meta))

    def delivered(self, chunk: pa.Table, results: BatchResults) -> None:
        """Append the batch's records that were delivered (sent)."""
        n = len(results)
        sent = results.status.count("sent")
        if not sent:
            return
        table = pa.table(
            {
                "idempotency_key": chunk.column("idempotency_key"),
                "customer_id": chunk.column("customer_id"),
                "action": chunk.column("action"),
                "variant": chunk.column("variant"),
                "attempt": pc.add(chunk.column("attempts"), 1).cast(pa.int32()),
                "remote_id": _strings(results.remote_id),
            },
            schema=self.SCHEMA,
        )
        if sent < n:
            table = table.filter(pa.array([s == "sent" for s in results.status]))
        with self._lock:
            self._writer.write_table(table)

    def close(self) -> None:
        with self._lock:
            self._writer.close()
            self._fh.close()

    @staticmethod
    def read(path: Path) -> tuple[pa.Table, dict[str, str]]:
        """(the records journaled as delivered, the run's constants); a torn last batch is ignored."""
        batches: list[pa.RecordBatch] = []
        with path.open("rb") as fh:
            try:
                reader = pa.ipc.open_stream(fh)
            except (pa.ArrowInvalid, OSError):  # killed before the schema was written
                return OutcomeJournal.SCHEMA.empty_table(), {}
            meta = {k.decode(): v.decode() for k, v in (reader.schema.metadata or {}).items()}
            try:
                for batch in reader:
                    batches.append(batch)
            except (pa.ArrowInvalid, OSError):  # a batch torn by the kill: never acknowledged as journaled
                pass
        return pa.Table.from_batches(batches, schema=OutcomeJournal.SCHEMA), meta


class DeliveryJournal:
    """An append-only file of what a record-by-record destination (SMTP) did with each record
    during the current run: `A<TAB>key` just before a record is handed over, `S<TAB>key<TAB>remote
    id` once it is accepted; each line is flushed and fsynced before the call returns.

    Non-idempotent destinations mark their batches in_flight in the ledger before sending, and a
    run that dies leaves those rows behind. With the journal the next run knows, per record:
    accepted (`sent`), handed over but not confirmed (`unknown`: never resent), or never handed
    over (`released`: planned again). So a crash costs at most the records being handed over at
    that instant, one per worker, instead of every batch in flight. The journal is created
    before anything is marked in_flight and removed once the ledger holds every outcome; without
    it (a rerun on another machine) every in_flight record is `unknown`, as before."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open("ab")
        self._lock = threading.Lock()

    def _write(self, line: str) -> None:
        data = line.encode()
        with self._lock:
            self._fh.write(data)
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def attempt(self, key: str) -> None:
        self._write(f"A\t{key}\n")

    def record(self, key: str, remote_id: str | None) -> None:
        self._write(f"S\t{key}\t{remote_id or ''}\n")

    def close(self) -> None:
        self._fh.close()

    @staticmethod
    def read(path: Path) -> tuple[set[str], dict[str, str | None]]:
        """(keys handed over, {accepted key: remote id}); a torn last line is ignored."""
        attempted: set[str] = set()
        sent: dict[str, str | None] = {}
        for line in path.read_bytes().split(b"\n")[:-1]:
            kind, _, rest = line.decode("utf-8", "replace").partition("\t")
            key, _, remote = rest.partition("\t")
            if len(key) != 36:
                continue
            if kind == "A":
                attempted.add(key)
            elif kind == "S":
                sent[key] = remote or None
        return attempted, sent


class _LedgerWriter:
    """Writes outcome tables to the ledger in order, on its own connection, in a background thread.

    `write` queues (at most two tables wait, so memory stays bounded); `write_now` waits for the
    queue to drain and writes synchronously (in_flight markers must be committed before sending).
    `close` drains the queue and raises the first error a write met."""

    def __init__(self, con: duckdb.DuckDBPyConnection, insert):
        self.con, self.insert = con, insert
        self.queue: queue.Queue[pa.Table | None] = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            table = self.queue.get()
            try:
                if table is None:
                    return
                if self.error is None:
                    self.insert(self.con, table)
            except BaseException as exc:  # surfaced by close(); later tables are not written
                self.error = exc
            finally:
                self.queue.task_done()

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    def write(self, table: pa.Table) -> None:
        self._check()
        self.queue.put(table)

    def write_now(self, table: pa.Table) -> None:
        self.queue.join()
        self._check()
        self.insert(self.con, table)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        self.con.close()
        self._check()
