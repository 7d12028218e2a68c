"""Settle `unknown` deliveries: ask whoever can answer, record the answer, report the rest.

A record is `unknown` when it may or may not have reached its destination: an SMTP message
whose end of DATA got no reply, an HTTP batch whose last try timed out after the request had
gone out, or a record being handed over when a run died. `unknown` is final for the planner
(resending could be a duplicate) and counts as possibly delivered. The sync engine calls
`reconcile` at the start of every run, so each run first settles what earlier runs left open:

    evidence = [*destination.delivery_evidence(), ProviderEvents(landing_dir)]
    report = reconcile(con, sync_key, evidence, sync_id=run_id, now=now)

Each source of evidence answers per key: delivered, or (only a source that sees everything the
destination accepted, `authoritative`) not delivered. The first source with an answer wins:

    SmtpOutbox(dir, message_id)  the SMTP server's outbox, one `<sha256(Message-ID)[:32]>.eml` per
                                 accepted message (the project's SMTP sink writes it); authoritative
    AcceptedKeysLog(dir)         `*.accepted` files listing, one per line, the record keys the
                                 receiver accepted (the project's HTTP sink writes them; a gateway
                                 can export the same); authoritative
    ProviderEvents(landing_dir)  the provider webhooks the engagement receiver appended to the
                                 landing zone: delivered, bounced, opened, clicked, complained or
                                 unsubscribed with the message_key prove the message arrived;
                                 their absence proves nothing, so it only confirms

Delivered becomes a `sent` event (its reason names the source), not delivered a `released` one
(the planner plans the key again and it goes out once). What no source can settle stays
`unknown`: `outstanding` counts it for the Dagster check and the run summary, and `settle`
records the decision a person takes (after asking the provider, say).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import duckdb
import pyarrow as pa

from activation.ledger import SCHEMA, ensure_schema

log = logging.getLogger(__name__)

# engagement events that show the message reached the recipient's side
PROOF_OF_DELIVERY = ("delivered", "bounced", "opened", "clicked", "complained", "unsubscribed")
OUTCOMES = ("sent", "released")


@dataclass(frozen=True)
class Unknown:
    """One record whose delivery is unknown, as the ledger has it."""

    idempotency_key: str
    customer_id: str
    remote_id: str | None = None  # e.g. the Message-ID, when the destination reported one


class DeliveryEvidence(Protocol):
    """Something that can say whether records reached the destination."""

    name: str  # named in the ledger's reason
    authoritative: bool  # True: a key it has not seen was not delivered

    def lookup(self, records: Sequence[Unknown]) -> dict[str, bool]:
        """key -> True (delivered) or False (not delivered; authoritative sources only).
        Keys it cannot answer for are left out."""
        ...


def outbox_file_name(message_id: str) -> str:
    """The file an SMTP outbox keeps one accepted message in: sha256 of its Message-ID."""
    return hashlib.sha256(message_id.strip().encode("utf-8", "replace")).hexdigest()[:32] + ".eml"


class SmtpOutbox:
    """An SMTP server's outbox folder (see outbox_file_name); `message_id(key)` gives a key's
    Message-ID when the ledger has none."""

    authoritative = True

    def __init__(self, directory: Path | str, message_id: Callable[[str], str]):
        self.directory = Path(directory)
        self.message_id = message_id
        self.name = "the SMTP server's outbox"

    def lookup(self, records: Sequence[Unknown]) -> dict[str, bool]:
        if not self.directory.is_dir():  # no outbox at all: it cannot answer
            return {}
        return {
            r.idempotency_key: (
                self.directory / outbox_file_name(r.remote_id or self.message_id(r.idempotency_key))
            ).exists()
            for r in records
        }


class AcceptedKeysLog:
    """A folder of `*.accepted` files, one accepted record key per line."""

    authoritative = True

    def __init__(self, directory: Path | str):
        self.directory = Path(directory)
        self.name = "the receiver's accepted-keys log"

    def lookup(self, records: Sequence[Unknown]) -> dict[str, bool]:
        files = sorted(self.directory.glob("*.accepted")) if self.directory.is_dir() else []
        if not files:
            return {}
        wanted = {r.idempotency_key for r in records}
        seen: set[str] = set()
        for path in files:
            with path.open("rb") as fh:
                for line in fh:
                    key = line.strip().decode("ascii", "replace")
                    if key in wanted:
                        seen.add(key)
        return {key: key in seen for key in wanted}


class ProviderEvents:
    """Provider webhooks and tracking events in the landing zone (engagement/events/**/*.jsonl).
    Every file is read when there is something to settle (never when nothing is unknown)."""

    authoritative = False

    def __init__(self, landing_dir: Path | str):
        self.root = Path(landing_dir) / "engagement" / "events"
        self.name = "provider delivery events"

    def lookup(self, records: Sequence[Unknown]) -> dict[str, bool]:
        wanted = {r.idempotency_key for r in records}
        found: dict[str, bool] = {}
        if not wanted or not self.root.is_dir():
            return found
        for path in sorted(self.root.rglob("*.jsonl")):
            with path.open("rb") as fh:
                for line in fh:
                    if b"message_key" not in line:
                        continue
                    try:
                        event = json.loads(line)
                    except ValueError:  # a torn last line of a killed receiver
                        continue
                    key = event.get("message_key") if isinstance(event, dict) else None
                    if key in wanted and event.get("event_type") in PROOF_OF_DELIVERY:
                        found[key] = True
        return found


@dataclass
class Reconciliation:
    confirmed: int = 0  # unknown -> sent
    released: int = 0  # unknown -> released (planned again)
    outstanding: int = 0  # still unknown: a person decides

    def as_dict(self) -> dict[str, int]:
        return {"confirmed": self.confirmed, "released": self.released, "outstanding": self.outstanding}


def unknown_records(con: duckdb.DuckDBPyConnection, sync_key: str) -> list[Unknown]:
    """The sync's records whose latest ledger event is `unknown` (the log is ranked for those keys only)."""
    rows = con.execute(
        f"""select cast(idempotency_key as varchar), customer_id, remote_id from {SCHEMA}.delivery_log
            where sync_key = ? and idempotency_key in (
                select idempotency_key from {SCHEMA}.delivery_log where sync_key = ? and status = 'unknown')
            qualify row_number() over (partition by idempotency_key order by seq desc) = 1
                and status = 'unknown'""",
        [sync_key, sync_key],
    ).fetchall()
    return [Unknown(key, customer, remote) for key, customer, remote in rows]


def reconcile(
    con: duckdb.DuckDBPyConnection,
    sync_key: str,
    evidence: Iterable[DeliveryEvidence],
    *,
    sync_id: str,
    now: dt.datetime,
) -> Reconciliation:
    """Ask each source about the sync's unknown records (first answer wins) and record the answers."""
    ensure_schema(con)
    pending = unknown_records(con, sync_key)
    report = Reconciliation()
    decided: dict[str, tuple[str, str]] = {}
    for source in evidence:
        if not pending:
            break
        try:
            answers = source.lookup(pending)
        except OSError as exc:  # an unreadable log must not stop the sync: the records stay unknown
            log.warning("%s: could not read %s: %s", sync_key, source.name, exc.strerror or exc)
            continue
        for key, delivered in answers.items():
            if delivered:
                decided[key] = ("sent", f"confirmed delivered by {source.name} after an unknown outcome")
            elif source.authoritative:
                decided[key] = ("released", f"not delivered according to {source.name}; planned again")
        pending = [r for r in pending if r.idempotency_key not in decided]
    _record(con, sync_key, decided, sync_id, now)
    report.confirmed = sum(1 for status, _ in decided.values() if status == "sent")
    report.released = len(decided) - report.confirmed
    report.outstanding = len(pending)
    if decided or pending:
        log.info(
            "%s: unknown deliveries: %d confirmed, %d released, %d still unknown",
            sync_key,
            report.confirmed,
            report.released,
            report.outstanding,
        )
    return report


def settle(
    con: duckdb.DuckDBPyConnection,
    sync_key: str,
    outcome: str,
    *,
    keys: Sequence[str] | None = None,
    note: str = "settled by hand",
    now: dt.datetime | None = None,
) -> int:
    """Record a person's decision on the sync's unknown records (all, or `keys`): `sent` (it did
    arrive: never resent) or `released` (it did not: the next run sends it). Returns how many."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
    ensure_schema(con)
    wanted = set(keys) if keys is not None else None
    records = [r for r in unknown_records(con, sync_key) if wanted is None or r.idempotency_key in wanted]
    decided = {r.idempotency_key: (outcome, note) for r in records}
    stamp = (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None)
    _record(con, sync_key, decided, "settle-" + stamp.strftime("%Y%m%dT%H%M%S"), stamp)
    return len(decided)


def outstanding(con: duckdb.DuckDBPyConnection, sync_key: str) -> tuple[int, dt.datetime | None]:
    """(records of the sync still unknown, when the oldest of them became unknown)."""
    row = con.execute(
        f"""select count(*), min(recorded_at) from (
                select status, recorded_at from {SCHEMA}.delivery_log
                where sync_key = ? and idempotency_key in (
                    select idempotency_key from {SCHEMA}.delivery_log where sync_key = ? and status = 'unknown')
                qualify row_number() over (partition by idempotency_key order by seq desc) = 1
            ) where status = 'unknown'""",
        [sync_key, sync_key],
    ).fetchone()
    return int(row[0]), row[1]


def _record(
    con: duckdb.DuckDBPyConnection,
    sync_key: str,
    decided: dict[str, tuple[str, str]],
    sync_id: str,
    now: dt.datetime,
) -> None:
    """Append one ledger event per decided key, copying the record's details from its unknown event."""
    if not decided:
        return
    keys = list(decided)
    con.register(
        "_settled",
        pa.table(
            {
                "idempotency_key": pa.array(keys, pa.string()),
                "status": pa.array([decided[k][0] for k in keys], pa.string()),
                "reason": pa.array([decided[k][1] for k in keys], pa.string()),
            }
        ),
    )
    try:
        con.execute(
            f"""insert into {SCHEMA}.delivery_log (idempotency_key, sync_key, sync_id, customer_id, action,
                    status, reason, error, attempt, remote_id, channel, campaign, variant, content_version,
                    recorded_at, stage)
                select l.idempotency_key, l.sync_key, ?, l.customer_id, l.action, s.status, s.reason, null,
                       l.attempt, l.remote_id, l.channel, l.campaign, l.variant, l.content_version, ?, l.stage
                from {SCHEMA}.delivery_log as l
                join _settled as s on l.idempotency_key = cast(s.idempotency_key as uuid)
                where l.sync_key = ? and l.status = 'unknown'
                qualify row_number() over (partition by l.idempotency_key order by l.seq desc) = 1""",
            [sync_id, now.replace(tzinfo=None), sync_key],
        )
    finally:
        con.unregister("_settled")
