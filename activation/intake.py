"""Unsubscribes and complaints reach the policies at once: the receiver's consent revocations,
taken into the warehouse by every sync before it plans.

The engagement receiver (activation/receiver.py) runs in its own process and cannot write the
DuckDB warehouse (one writer), so it appends a consent line for every unsubscribe and complaint
to `{landing}/crm/consents/receiver-*.jsonl`:

    {"customer_id": ..., "channel": "email" | "sms" | "push", "status": "revoked",
     "consented_at": "2026-03-02T13:00:00.000Z", "source": "unsubscribe link" | "complaint"}

dbt turns those lines into `dim_customers.<channel>_opt_in = false` on the next pipeline run,
but a sync may run before that: the deferred_messages sensor reruns a message sync with no dbt
build at all. So `take_in_revocations` runs at the start of every sync (the sync asset calls it)
and copies the new revocation lines into `tideline_sync.consent_revocations`, which the consent
policy reads (activation/policies.py: the later of dbt's consent event and a revocation wins,
so a later grant lifts an unsubscribe once dbt has built it).

Only new bytes are read: `tideline_sync.consent_intake_files` keeps, per file, how far complete
lines have been taken in (the receiver never rewrites a file, it only appends and rotates). A line
being written (no newline yet) waits for the next sync. A line's id is its file and byte offset,
so taking a file in again (after a restore, or a file replaced by a shorter one) records
nothing twice; the lines and the new offsets are written in one transaction. A line that is not
a usable revocation (torn by a killed receiver, no customer, an unknown channel, a bad time) is
skipped and counted: the landing loader reports it with file and line, and the rest goes on.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from activation.ledger import SCHEMA, ensure_schema

log = logging.getLogger(__name__)

CONSENT_DIR = Path("crm") / "consents"
RECEIVER_GLOB = "receiver-*.jsonl"
CHANNELS = ("email", "sms", "push")
MAX_ID = 256


@dataclass(frozen=True)
class IntakeResult:
    files: int = 0  # receiver files with new complete lines
    lines: int = 0  # new complete lines read
    revocations: int = 0  # revocations recorded (new ones only)
    skipped: int = 0  # lines that were not usable revocations

    def as_dict(self) -> dict[str, int]:
        return {
            "files": self.files,
            "lines": self.lines,
            "revocations": self.revocations,
            "skipped": self.skipped,
        }


def take_in_revocations(
    con: duckdb.DuckDBPyConnection, landing_dir: Path | str, now: dt.datetime | None = None
) -> IntakeResult:
    """Record the receiver's new revocation lines under `landing_dir` in tideline_sync.consent_revocations."""
    landing = Path(landing_dir)
    folder = landing / CONSENT_DIR
    ensure_schema(con)
    if not folder.is_dir():
        return IntakeResult()
    taken = dict(con.execute(f"select file, bytes_read from {SCHEMA}.consent_intake_files").fetchall())
    rows: list[tuple[str, str, dt.datetime, str | None, str, int]] = []
    offsets: dict[str, int] = {}
    lines = skipped = 0
    for path in sorted(folder.glob(RECEIVER_GLOB)):
        rel = path.relative_to(landing).as_posix()
        data, start = _new_bytes(path, int(taken.get(rel, 0)))
        if not data:
            continue
        position = start
        for line in data.split(b"\n")[:-1]:  # complete lines only
            lines += 1
            revocation = _revocation(line)
            if revocation is None:
                skipped += 1
            else:
                rows.append((*revocation, rel, position))
            position += len(line) + 1
        offsets[rel] = position
    recorded = _record(con, rows, offsets, now or dt.datetime.now(dt.UTC)) if offsets else 0
    result = IntakeResult(len(offsets), lines, recorded, skipped)
    if lines:
        log.info("consent intake: %s", result.as_dict())  # counts only, never ids
    return result


def _new_bytes(path: Path, start: int) -> tuple[bytes, int]:
    """The complete lines after `start` (ending at the last newline), and where they start. A
    file shorter than `start` was replaced: it is read again from the beginning."""
    size = path.stat().st_size
    if size < start:
        start = 0
    if size == start:
        return b"", start
    with path.open("rb") as fh:
        fh.seek(start)
        data = fh.read(size - start)
    return data[: data.rfind(b"\n") + 1], start


def _revocation(line: bytes) -> tuple[str, str, dt.datetime, str | None] | None:
    """(customer_id, channel, revoked_at as naive UTC, source) of a revocation line, else None."""
    try:
        record: Any = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict) or str(record.get("status", "")).strip().lower() != "revoked":
        return None
    customer, channel = record.get("customer_id"), record.get("channel")
    if not isinstance(customer, str) or not customer.strip() or len(customer) > MAX_ID:
        return None
    if channel not in CHANNELS:
        return None
    revoked_at = _utc(record.get("consented_at"))
    if revoked_at is None:
        return None
    source = record.get("source")
    return customer.strip(), channel, revoked_at, source if isinstance(source, str) else None


def _utc(value: Any) -> dt.datetime | None:
    """An ISO 8601 time as naive UTC (no offset means UTC, as in the landing zone), else None."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment


def _record(
    con: duckdb.DuckDBPyConnection,
    rows: list[tuple[str, str, dt.datetime, str | None, str, int]],
    offsets: dict[str, int],
    now: dt.datetime,
) -> int:
    """Insert the revocations not recorded before and move the files' offsets, in one transaction."""
    taken_at = now.astimezone(dt.UTC).replace(tzinfo=None) if now.tzinfo else now
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in range(6)]
    batch = pa.table(
        {
            "customer_id": pa.array(columns[0], pa.string()),
            "channel": pa.array(columns[1], pa.string()),
            "revoked_at": pa.array(columns[2], pa.timestamp("us")),
            "source": pa.array(columns[3], pa.string()),
            "file": pa.array(columns[4], pa.string()),
            "line_offset": pa.array(columns[5], pa.int64()),
        }
    )
    files = pa.table(
        {
            "file": pa.array(list(offsets), pa.string()),
            "bytes_read": pa.array(list(offsets.values()), pa.int64()),
        }
    )
    con.register("_intake_lines", batch)
    con.register("_intake_files", files)
    con.execute("begin transaction")
    try:
        inserted = con.execute(
            f"""insert into {SCHEMA}.consent_revocations
                select i.customer_id, i.channel, i.revoked_at, i.source, i.file, i.line_offset, ?
                from _intake_lines as i
                where not exists (
                    select 1 from {SCHEMA}.consent_revocations as r
                    where r.file = i.file and r.line_offset = i.line_offset)""",
            [taken_at],
        ).fetchone()[0]
        con.execute(
            f"delete from {SCHEMA}.consent_intake_files where file in (select file from _intake_files)"
        )
        con.execute(
            f"insert into {SCHEMA}.consent_intake_files select file, bytes_read, ? from _intake_files",
            [taken_at],
        )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    finally:
        con.unregister("_intake_lines")
        con.unregister("_intake_files")
    return int(inserted)
