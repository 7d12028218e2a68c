"""Appending a sync run's events to the delivery ledger (`tideline_sync.delivery_log`).

Every event of one run carries the same constants, a `RunStamp` (sync key and id, channel,
campaign, content version, the run's time); they are bound as parameters, never written into
the SQL. What is appended:

- `record_decisions`: the plan's decisions that are not sends (skipped with a reason, deferred
  with `not_before`, holdout once per key, dead letters), one INSERT ... SELECT each;
- `insert_events`: per-record events from an Arrow table (`outcome_events` builds one from a
  window and its statuses: sent, failed, unknown, dead_letter, or in_flight markers);
- `LedgerWriter`: appends outcome tables in order on a second connection in a background
  thread, so the workers never wait for the ledger.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from activation.config import SyncBinding
from activation.ledger import SCHEMA
from activation.warehouse import execute

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
    "stage",
)

# (decision in the plan, ledger status, which of its rows), in the order they are appended;
# a holdout is recorded once per key, not again on every run that holds it out, and a skip once
# per key and reason while it lasts (a pilot's held rest, planned again by every journey tick, or
# a customer without consent at every daily run: one row, not one per run), and a deferral once per
# key, reason and not_before (a run during the same quiet hours defers to the same morning)
_DECISIONS = (
    (
        "skip",
        "skipped",
        "and not (coalesce(ledger_status, '') = 'skipped' and ledger_reason is not distinct from reason)",
    ),
    (
        "defer",
        "deferred",
        "and not (coalesce(ledger_status, '') = 'deferred' and ledger_reason is not distinct from reason"
        " and ledger_not_before is not distinct from not_before)",
    ),
    ("holdout", "holdout", "and coalesce(ledger_status, '') <> 'holdout'"),
    ("dead", "dead_letter", ""),
)


def log_insert(*more_columns: str) -> str:
    """`insert into <the delivery log> (<the event columns>[, more_columns])`: every append's head."""
    return f"insert into {SCHEMA}.delivery_log ({', '.join((*LOG_COLUMNS, *more_columns))})"


@dataclass(frozen=True)
class RunStamp:
    """The constants every ledger event of one sync run carries."""

    sync_key: str
    sync_id: str
    channel: str | None
    campaign: str
    content_version: str
    recorded_at: dt.datetime  # the run's `now` (naive UTC)

    @classmethod
    def of(cls, binding: SyncBinding, sync_id: str, now: dt.datetime) -> RunStamp:
        return cls(binding.sync_key, sync_id, binding.channel, binding.campaign, binding.content_version, now)

    def params(self) -> dict[str, Any]:
        """The stamp as named SQL parameters ($sync_key, $sync_id, ...), one per field."""
        return asdict(self)


def record_decisions(con: duckdb.DuckDBPyConnection, stamp: RunStamp, decided: Mapping[str, int]) -> None:
    """Append the decisions in `_decided` that are not sends; a decision nobody got, no statement.
    Deferred records carry `not_before` (when quiet hours end for the customer, or the Retry-After)."""
    for decision, status, only in _DECISIONS:
        if not decided.get(decision):
            continue
        deferred = decision == "defer"
        not_before = ", not_before" if deferred else ""
        execute(
            con,
            f"""{log_insert("not_before") if deferred else log_insert()}
                select idempotency_key, $sync_key, $sync_id, customer_id, action, $status, reason, null,
                       attempts, null, $channel, $campaign, variant, $content_version, $recorded_at, stage{not_before}
                from _decided where decision = $decision {only}""",
            {**stamp.params(), "status": status, "decision": decision},
        )


def insert_events(
    con: duckdb.DuckDBPyConnection,
    events: pa.Table,
    stamp: RunStamp,
    *,
    reason: str | None = None,
    unless_logged: bool = False,
) -> None:
    """Append per-record events (idempotency_key, customer_id, action, variant, status, error,
    attempt, remote_id, and stage when the table has it: a journal written before stages had none)
    on `con`, each with the run's constants and `reason`. `unless_logged`: leave out keys the
    stamp's run has already logged (a journal resolved twice)."""
    if events.num_rows == 0:
        return
    already = (
        f"where cast(idempotency_key as uuid) not in (select idempotency_key from {SCHEMA}.delivery_log where sync_id = $sync_id)"
        if unless_logged
        else ""
    )
    stage = "nullif(stage, '')" if "stage" in events.column_names else "cast(null as varchar)"
    con.register("_events", events)
    try:
        execute(
            con,
            f"""{log_insert()}
                select cast(idempotency_key as uuid), $sync_key, $sync_id, customer_id, action, status, $reason,
                       error, attempt, remote_id, $channel, $campaign, nullif(variant, ''), $content_version,
                       $recorded_at, {stage}
                from _events {already}""",
            {**stamp.params(), "reason": reason},
        )
    finally:
        con.unregister("_events")


def event_columns(part: pa.Table) -> dict[str, pa.ChunkedArray]:
    """The columns every per-record event of a window (or batch) of the send list carries:
    key, customer, action, variant, the launch stage ('' without one) and the number of this attempt."""
    return {
        "idempotency_key": part.column("idempotency_key"),
        "customer_id": part.column("customer_id"),
        "action": part.column("action"),
        "variant": part.column("variant"),
        "stage": part.column("stage"),
        "attempt": pc.add(part.column("attempts"), 1).cast(pa.int32()),
    }


def outcome_events(
    part: pa.Table,
    status: pa.Array | list[str],
    error: pa.Array | None = None,
    remote_id: pa.Array | None = None,
) -> pa.Table:
    """The events of a window of the send list, for `insert_events`."""
    n = part.num_rows
    return pa.table(
        {
            **event_columns(part),
            "status": pa.array(status, pa.string()) if isinstance(status, list) else status,
            "error": error if error is not None else pa.nulls(n, pa.string()),
            "remote_id": remote_id if remote_id is not None else pa.nulls(n, pa.string()),
        }
    )


def strings(values: list[str | None]) -> pa.Array:
    """A string column of `values` (all-null without looking at each value)."""
    if values.count(None) == len(values):
        return pa.nulls(len(values), pa.string())
    return pa.array(values, pa.string())


class LedgerWriter:
    """Writes event tables to the ledger in order, on its own connection, in a background thread.

    `write` queues (at most two tables wait, so memory stays bounded); `write_now` waits for the
    queue to drain and writes synchronously (in_flight markers must be committed before sending).
    `close` drains the queue and raises the first error a write met."""

    def __init__(self, con: duckdb.DuckDBPyConnection, stamp: RunStamp):
        self.con, self.stamp = con, stamp
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
                    insert_events(self.con, table, self.stamp)
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
        insert_events(self.con, table, self.stamp)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        self.con.close()
        self._check()
