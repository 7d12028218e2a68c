"""What a sync run that died left unrecorded, and the journals that tell the next run.

Two journals live next to the warehouse (`SyncFiles`), one per sync:

- `OutcomeJournal` (`<sync>.outcomes`), for destinations whose delivery is idempotent (HTTP
  with per-record keys, table upserts, audience files): what each batch delivered, written as
  soon as the batch is back. Outcomes reach the ledger a window at a time, so without it a
  crash would resend the whole window; with it, only the batches in flight.
- `DeliveryJournal` (`<sync>.journal`), for destinations that are not (SMTP): each record
  handed over and each record accepted, fsynced. Such records are marked in_flight in the
  ledger before sending; after a crash the journal says which were accepted (`sent`), never
  handed over (`released`: planned again) or caught in between (`unknown`: never resent).

`resolve_interrupted` reads them at the start of the next run. A journal goes once the ledger
holds every outcome of its run (activation.engine.sending).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from activation.destinations.base import BatchResults
from activation.engine.ledger_writes import RunStamp, event_columns, insert_events, log_insert, strings
from activation.ledger import SCHEMA
from activation.warehouse import execute

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncFiles:
    """The files a sync keeps between runs: its two journals and its destination's Retry-After."""

    directory: Path
    sync_key: str
    destination: str

    @classmethod
    def locate(
        cls, con: duckdb.DuckDBPyConnection, sync_key: str, destination: str, directory: Path | None = None
    ) -> SyncFiles:
        """Next to the warehouse file (`<warehouse>.sync-journal/`, so a rerun on the same
        warehouse finds them), or, for an in-memory warehouse (gone with its process, and so its
        journals), in a temp folder of this process's own: two processes syncing the same key on
        in-memory warehouses never read or delete each other's journal. `directory` overrides it."""
        if directory is None:
            row = con.execute(
                "select path from duckdb_databases() where database_name = current_database()"
            ).fetchone()
            directory = (
                Path(row[0] + ".sync-journal")
                if row and row[0]
                else Path(tempfile.gettempdir()) / f"tideline-sync-journal-{os.getpid()}"
            )
        return cls(directory, sync_key, destination)

    @property
    def delivery_journal(self) -> Path:
        return self.directory / (_file_stem(self.sync_key) + ".journal")

    @property
    def outcome_journal(self) -> Path:
        return self.directory / (_file_stem(self.sync_key) + ".outcomes")

    @property
    def not_before(self) -> Path:
        """The destination's "not before" file: one per destination, whatever the sync."""
        return self.directory / (_file_stem(self.destination) + ".not-before")


def _file_stem(name: str) -> str:
    """A name made safe as a file name (sync keys and destination names are mostly safe already)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


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
            ("stage", pa.string()),
            ("attempt", pa.int32()),
            ("remote_id", pa.string()),
        ]
    )

    def __init__(self, path: Path, stamp: RunStamp):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open("wb", buffering=0)
        self._lock = threading.Lock()
        meta = {
            "sync_id": stamp.sync_id,
            "channel": stamp.channel or "",
            "campaign": stamp.campaign,
            "content_version": stamp.content_version,
            "recorded_at": stamp.recorded_at.isoformat(),
        }
        self._writer = pa.ipc.new_stream(self._fh, self.SCHEMA.with_metadata(meta))

    def delivered(self, chunk: pa.Table, results: BatchResults) -> None:
        """Append the batch's records that were delivered (sent)."""
        n = len(results)
        sent = results.status.count("sent")
        if not sent:
            return
        table = pa.table(
            {**event_columns(chunk), "remote_id": strings(results.remote_id)}, schema=self.SCHEMA
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
    def read(path: Path, sync_key: str) -> tuple[pa.Table, RunStamp | None]:
        """(the records journaled as delivered, the stamp of the run that wrote them: None when it
        was killed before the schema was written); a torn last batch is ignored."""
        batches: list[pa.RecordBatch] = []
        with path.open("rb") as fh:
            try:
                reader = pa.ipc.open_stream(fh)
            except (pa.ArrowInvalid, OSError):  # killed before the schema was written
                return OutcomeJournal.SCHEMA.empty_table(), None
            meta = {k.decode(): v.decode() for k, v in (reader.schema.metadata or {}).items()}
            try:
                for batch in reader:
                    batches.append(batch)
            except (pa.ArrowInvalid, OSError):  # a batch torn by the kill: never acknowledged as journaled
                pass
        stamp = RunStamp(
            sync_key,
            meta["sync_id"],
            meta["channel"] or None,
            meta["campaign"],
            meta["content_version"],
            dt.datetime.fromisoformat(meta["recorded_at"]),
        )
        if batches and "stage" not in batches[0].schema.names:  # written before launch stages
            table = pa.Table.from_batches(batches)
            table = table.append_column("stage", pa.nulls(table.num_rows, pa.string()))
            batches = table.select(OutcomeJournal.SCHEMA.names).to_batches()
        return pa.Table.from_batches(batches, schema=OutcomeJournal.SCHEMA), stamp


class DeliveryJournal:
    """An append-only file of what a record-by-record destination (SMTP) did with each record
    during the current run: `A<TAB>key` just before a record is handed over, `S<TAB>key<TAB>remote
    id` once it is accepted. Each line is flushed (in the OS, so a killed process loses none)
    before the call returns; an `A` line is also fsynced, and that fsync runs outside the lock, so
    workers handing over at the same time share one disk flush instead of queueing behind each
    other's. An `S` line is not fsynced: losing one takes a machine crash, and a record with its
    `A` and without its `S` is `unknown`, never resent (the server's outbox, when configured,
    settles it later).

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

    def _write(self, line: str, durable: bool) -> None:
        data = line.encode()
        with self._lock:
            self._fh.write(data)
            self._fh.flush()
        if durable:  # after this thread's own write: its line is on disk when fsync returns
            os.fsync(self._fh.fileno())

    def attempt(self, key: str) -> None:
        self._write(f"A\t{key}\n", durable=True)

    def record(self, key: str, remote_id: str | None) -> None:
        self._write(f"S\t{key}\t{remote_id or ''}\n", durable=False)

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


# the SMTP records a run left in flight, and what the delivery journal says became of each
_IN_FLIGHT = f"select * from {SCHEMA}.delivery_ledger where sync_key = $sync_key and status = 'in_flight'"
_JOURNALED = """case when j.accepted then 'sent' when j.idempotency_key is null then 'released'
                     else 'unknown' end"""


def resolve_interrupted(
    con: duckdb.DuckDBPyConnection, files: SyncFiles, stamp: RunStamp, idempotent: bool
) -> int:
    """Record what an earlier run that died left unrecorded; returns the number of records this
    made `unknown`. Idempotent destinations: the batches its outcome journal holds are recorded
    `sent`, so only the batches that were in flight are planned and sent again (under the same
    keys). The others (SMTP): the delivery journal decides per in_flight record: accepted →
    `sent`, never handed over → `released` (planned again), the rest → `unknown`, never resent,
    so nobody gets a message twice."""
    if idempotent:
        _resolve_outcome_journal(con, files)
        return 0
    if files.delivery_journal.exists():
        _resolve_delivery_journal(con, files.delivery_journal, stamp)
        files.delivery_journal.unlink()
    else:  # no journal (e.g. rerun elsewhere): whatever was in flight may have gone out
        execute(
            con,
            f"""{log_insert()}
                select idempotency_key, sync_key, $sync_id, customer_id, action, 'unknown',
                       'interrupted during send; not resent to avoid a duplicate', null, attempt, null,
                       channel, campaign, variant, content_version, $recorded_at, stage
                from ({_IN_FLIGHT})""",
            stamp.params(),
        )
    n = con.execute(
        f"select count(*) from {SCHEMA}.delivery_log where sync_id = ? and status = 'unknown'",
        [stamp.sync_id],
    ).fetchone()[0]
    if n:
        log.warning(
            "%s: %s records were being handed over when a run died; marked unknown", stamp.sync_key, n
        )
    return int(n)


def _resolve_delivery_journal(con: duckdb.DuckDBPyConnection, path: Path, stamp: RunStamp) -> None:
    """Settle each in_flight record by what the delivery journal says became of it."""
    attempted, sent = DeliveryJournal.read(path)
    keys = list(attempted | sent.keys())
    con.register(
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
        execute(
            con,
            f"""{log_insert()}
                select l.idempotency_key, l.sync_key, $sync_id, l.customer_id, l.action, {_JOURNALED},
                       case {_JOURNALED}
                           when 'sent' then 'accepted before an interrupted run died (delivery journal)'
                           when 'released' then 'never handed over before an interrupted run died; planned again'
                           else 'interrupted while being handed over; not resent to avoid a duplicate'
                       end,
                       null, l.attempt, j.remote_id, l.channel, l.campaign, l.variant, l.content_version,
                       $recorded_at, l.stage
                from ({_IN_FLIGHT}) as l
                left join _journal as j on l.idempotency_key = cast(j.idempotency_key as uuid)""",
            stamp.params(),
        )
    finally:
        con.unregister("_journal")


def _resolve_outcome_journal(con: duckdb.DuckDBPyConnection, files: SyncFiles) -> None:
    """Record as `sent` what a run that died had delivered but not yet written to the ledger,
    under that run's id and constants."""
    path = files.outcome_journal
    if not path.exists():
        return
    sent, stamp = OutcomeJournal.read(path, files.sync_key)
    if sent.num_rows and stamp is not None:
        n = sent.num_rows
        events = sent.append_column("status", pa.repeat(pa.scalar("sent"), n)).append_column(
            "error", pa.nulls(n, pa.string())
        )
        insert_events(
            con,
            events,
            stamp,
            reason="delivered before an interrupted run died (outcome journal)",
            unless_logged=True,
        )
        log.info("%s: %s records an interrupted run delivered are recorded as sent", files.sync_key, n)
    path.unlink()
