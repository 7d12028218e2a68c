"""Sending a sync's send list: windows, batches, the worker pool, the rate limit, per-batch results.

    outcomes = Sender(con, destination, binding, stamp, files, backoff, workers=4, bucket=bucket).send()

The send list (`_decided` rows with decision `send`) streams out of the warehouse as Arrow
windows (WINDOW_RECORDS records for idempotent destinations; for the others two batches per
worker, each window marked in_flight in one ledger insert), so memory is bounded by the window,
not the segment. A window is split into destination batches (at most
`max_batch_size` records, one variant each) for the worker pool; every batch takes its records'
worth of tokens from one bucket shared by all workers. Once all of a window's batches are back
its outcomes are one ledger insert, made by the writer thread on its own connection while the
next window is already being sent.

Crash safety (activation.engine.journal): for idempotent destinations each worker appends what
its batch delivered to the outcome journal as soon as the batch is back; for the others each
window is marked in_flight (committed) before it is sent and the delivery journal follows each
record. The journals go once the ledger holds every outcome.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter, deque
from collections.abc import Generator
from concurrent.futures import Future, ThreadPoolExecutor

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from activation.config import SyncBinding, resolve_content
from activation.destinations.base import BatchResults, Destination, EncodedBatch, OutboundRecord, SyncContext
from activation.engine.backoff import Backoff
from activation.engine.journal import DeliveryJournal, OutcomeJournal, SyncFiles
from activation.engine.ledger_writes import LedgerWriter, RunStamp, outcome_events, strings
from activation.ratelimit import TokenBucket

log = logging.getLogger(__name__)

WINDOW_RECORDS = 32_768  # records per ledger write for idempotent destinations

# the canonical record JSON, encoded by the warehouse for destinations that take it as is
_RECORD_JSON = """, '{"customer_id":' || to_json(customer_id) || ',"idempotency_key":"'
                  || cast(idempotency_key as varchar) || '","action":"' || action || '","fields":'
                  || fields_json || '}' as record_json"""


def window_records(batch_size: int, workers: int, idempotent: bool) -> int:
    """Records per window of the send list: WINDOW_RECORDS (whole batches) for idempotent
    destinations; otherwise two batches per worker. A window costs two ledger writes (in_flight
    before, outcomes after), so a window of one batch made SMTP wait on the ledger for every 20
    messages; with a batch for every worker and one waiting, the workers keep sending while the
    next window is marked. After a crash the delivery journal settles every in_flight record
    (accepted: sent, never handed over: released, in between: unknown), so a bigger window
    resends nothing."""
    if idempotent:
        return max(batch_size, (WINDOW_RECORDS // batch_size) * batch_size)
    return batch_size * max(1, workers) * 2


def sync_context(
    binding: SyncBinding, sync_id: str, variant: str | None, journal: DeliveryJournal | None = None
) -> SyncContext:
    """What the destination is told about the run: the content (with the variant's overrides,
    templates read) and, for record-by-record destinations, the delivery journal's callbacks."""
    content = dict(binding.content)
    if variant and variant in binding.variants:
        content.update(binding.variants[variant])
    return SyncContext(
        sync_id=sync_id,
        segment=binding.segment,
        destination=binding.destination,
        mode=binding.mode,
        content_version=binding.content_version,
        content=resolve_content(content),
        campaign=binding.campaign,
        variant=variant or "",
        on_attempt=journal.attempt if journal is not None else None,
        on_sent=journal.record if journal is not None else None,
    )


class Sender:
    """Sends one run's send list through the destination and records the outcomes."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        destination: Destination,
        binding: SyncBinding,
        stamp: RunStamp,
        files: SyncFiles,
        backoff: Backoff,
        *,
        workers: int,
        bucket: TokenBucket,
    ):
        self.con, self.destination, self.binding, self.stamp = con, destination, binding, stamp
        self.files, self.backoff, self.workers, self.bucket = files, backoff, workers, bucket
        self.idempotent = destination.idempotent_delivery
        self.encoded = destination.encoded_batches
        self.size = max(1, int(destination.max_batch_size))
        self._journal: DeliveryJournal | None = None
        self._contexts: dict[str, SyncContext] = {}

    def send(self) -> Counter[str]:
        """Stream the send list window by window and send it; returns the number of records per
        outcome (sent, failed, dead_letter, unknown). Two windows (or enough for every worker)
        are in flight at once."""
        size = self.size
        window = window_records(size, self.workers, self.idempotent)
        depth = max(2, -(-self.workers * 2 * size // window))
        totals: Counter[str] = Counter()
        pending: deque[tuple[pa.Table, list[Future]]] = deque()
        writer = LedgerWriter(self.con.cursor(), self.stamp)
        outcomes: OutcomeJournal | None = None
        if self.idempotent:
            outcomes = OutcomeJournal(self.files.outcome_journal, self.stamp)
        else:
            self._journal = DeliveryJournal(self.files.delivery_journal)

        def finish() -> None:
            part, futures = pending.popleft()
            totals.update(self._finish_window(part, [f.result() for f in futures], writer))

        reader = self._windows(window)
        try:
            with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="sync") as pool:
                for batch in reader:
                    part = pa.Table.from_batches([batch])
                    if not self.idempotent:
                        writer.write_now(outcome_events(part, ["in_flight"] * part.num_rows))
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
            self.backoff.save()
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

    def _windows(self, window: int) -> Generator[pa.RecordBatch, None, None]:
        """The send list in windows of `window` records. With variants, one variant after another:
        a scan of the send list per variant (an A/B test has two) instead of sorting all of it,
        payloads included, which at millions of records spilled most of it to disk."""
        select = f"""select coalesce(variant, '') as variant, customer_id,
                            cast(idempotency_key as varchar) as idempotency_key, action, attempts,
                            coalesce(stage, '') as stage {_RECORD_JSON if self.encoded else ", fields_json"}
                     from _decided where decision = 'send'"""
        groups: list[tuple[str, list[str]]] = [(select, [])]
        if self.binding.variants:
            variants = self.con.execute(
                "select distinct coalesce(variant, '') from _decided where decision = 'send' order by 1"
            ).fetchall()
            groups = [(select + " and coalesce(variant, '') = ?", [v]) for (v,) in variants]
        for sql, params in groups:
            reader = self.con.execute(sql, params).fetch_record_batch(window)
            try:
                yield from reader
            finally:
                reader.close()

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

    def _deliver_and_journal(
        self, chunk: pa.Table, variant: str, outcomes: OutcomeJournal | None
    ) -> BatchResults:
        """Send one batch (in a worker); journal what was delivered; note a Retry-After."""
        results = self._deliver(chunk, variant)
        if results.retry_after is not None:
            self.backoff.note(results.retry_after)
        if outcomes is not None:
            outcomes.delivered(chunk, results)
        return results

    def _context_for(self, variant: str) -> SyncContext:
        context = self._contexts.get(variant)
        if context is None:  # templates are read once per variant, not once per batch
            context = self._contexts[variant] = sync_context(
                self.binding, self.stamp.sync_id, variant or None, self._journal
            )
        return context

    def _deliver(self, chunk: pa.Table, variant: str) -> BatchResults:
        """One batch through the destination, as per-record results; a destination that raises
        fails the whole batch (every record retryable)."""
        n = chunk.num_rows
        keys = chunk.column("idempotency_key").to_pylist()
        self.bucket.acquire(n)
        try:
            context = self._context_for(variant)
            if self.encoded:
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
        self, part: pa.Table, results: list[BatchResults], writer: LedgerWriter
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
            error.append(strings(r.error))
            remote.append(strings(r.remote_id))
        writer.write(outcome_events(part, _concat(status), _concat(error), _concat(remote)))
        return counts


def _joined(column: pa.ChunkedArray | pa.Array, separator: str, sort: bool = False) -> bytes:
    """The strings of an Arrow column joined by `separator`, as UTF-8 bytes (joined in Arrow)."""
    values = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if sort:
        values = values.take(pc.sort_indices(values))
    offsets = pa.array([0, len(values)], pa.int32())
    return pc.binary_join(pa.ListArray.from_arrays(offsets, values), separator)[0].as_buffer().to_pybytes()


def _concat(arrays: list[pa.Array]) -> pa.Array:
    return arrays[0] if len(arrays) == 1 else pa.concat_arrays(arrays)
