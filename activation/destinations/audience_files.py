"""Hashed audience files for ad platforms (kind "audience_files"): SHA-256 of email and phone, never raw.

Config:

    type: audience_files
    directory: .tideline/audiences   # required; created when missing
    audience: vip_lookalikes         # file stem; default the segment's name
    identifiers: [email, phone]      # which fields to hash (default both)
    include_customer_id: false       # add our customer_id column (ad platforms should not get it by default)
    default_country_code: "44"       # optional: lets national phone numbers (no + or 00) be used
    phone_format: digits             # digits (default) or e164 (hash "+<digits>"), see below
    max_batch_size: 5000             # default 5000
    state_dir: .tideline/audiences/.state   # default {directory}/.state (see "Deletes")

Layout, one folder per sync run:

    {directory}/{audience}/{sync_id}/add-part-<batch hash>.csv     upserts and sends, one part per batch
    {directory}/{audience}/{sync_id}/remove-part-<batch hash>.csv  deletes (mirror mode: left the segment)
    {directory}/{audience}/{sync_id}/add.csv, remove.csv           all parts, rows deduplicated (finalize)
    {directory}/{audience}/{sync_id}/manifest.json                 parts, row counts, normalisation (finalize)

CSV header: `customer_id,email_sha256,phone_sha256` (customer_id only with include_customer_id; only
the configured identifiers); an identifier that is missing or unusable is an empty cell. Lines
end with CRLF (RFC 4180), so a cell holding a line break is quoted, never split. A
customer id starting with = + - @, a tab or a carriage return is written with a leading
apostrophe (`'=1+2`), so a spreadsheet opening the file shows it as text instead of running it as
a formula (CSV injection); hashes never start with those.

Each part is written to a temp file in the same folder, fsynced, then moved into place with
os.replace, so a reader never sees half a batch. The batch hash is a SHA-256 of the batch's sorted
idempotency keys: a retried batch overwrites its own part instead of adding rows twice.
`finalize(context)` is called by the sync engine at the end of every sync run (it also works
standalone: it only reads the parts): it writes add.csv, remove.csv and manifest.json the same way
(temp file + os.replace) and returns the manifest; with no parts it writes nothing and returns
None. The manifest is written last, so a folder without one is unfinished: a run killed after its
sends (in the ledger write, the state fold or finalize itself) leaves one behind, and the next
run's finalize, even one with nothing to send, finishes every such folder of the audience too
(its manifest then says `recovered_by` with the finishing run's id). So do not let two syncs that
run at the same time share one audience folder.

Normalisation before hashing (SHA-256, lower-case hex of the UTF-8 bytes):

* email: trimmed and lower-cased. Dots in Gmail addresses are NOT removed and "+tags" are kept:
  platforms disagree (Google's Campaign Manager asks for Gmail dots removed, Meta and TikTok do
  not), so we hash the address as the customer gave it. Values without exactly one "@" and a dotted
  domain are unusable.
* phone: E.164 digits WITHOUT the "+" (e.g. "+44 (0)20 7946 0958" -> "442079460958"), which is
  what Meta and TikTok expect. Google Customer Match hashes E.164 with the "+": set
  `phone_format: e164` for that. "+" or "00" starts an international number (a "(0)" trunk in it is
  dropped); a national number (no prefix) needs `default_country_code` (its trunk prefix is dropped:
  a leading 0, or for country code 1 a leading 1 in 11 digits; Italy, 39, keeps its 0); otherwise it
  is unusable, because hashing it without its country code would never match. Letters make a
  number unusable; extensions ("x123", "ext 123") are dropped. The result must have 7 to 15 digits.

Resends: a run killed after writing a part but before the ledger recorded its records leaves them
to be sent again by a later run. The destination notes each record key with the part it goes to
(SQLite, below) just before writing the part, and answers a record that another run wrote to a
part that is there as sent without writing it again: that run's folder (finished by the next
finalize) has it. A crash between the note and the part leaves no part, so the record is written
again: never hidden, never twice. A run that finalises normally recorded all it wrote, so its
notes are dropped then; a killed run's notes are kept KEEP_NOTES_DAYS (7) days. (So a full resync
within that week, e.g. into a new warehouse, leaves out the rows a killed run already wrote.)

Deletes: the sync engine sends a mirror-mode delete with the fields it last delivered for that
customer (kept in tideline_sync.synced_state), and their hashes go to remove.csv. As a fallback for
deletes without fields (state synced before the engine kept fields, or records sent by other
callers), the destination also remembers, per audience, the hashes it last added for each
customer_id in SQLite (`{state_dir}/{audience}.sqlite3`: customer ids, hashes and record keys
only, outside the audience folder; do not upload it); a removed customer is forgotten.

A record with no usable identifier (for a delete: none given and none remembered) fails, not
retryable ("no email or phone to hash"). Raw emails and phones are never written, logged or put
in errors; file-system errors fail the batch retryable (errno text only).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import os
import re
import sqlite3
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from activation.destinations.base import (
    ConfigError,
    DestinationDefaults,
    OutboundRecord,
    RecordResult,
    SyncContext,
)

log = logging.getLogger(__name__)

IDENTIFIERS = ("email", "phone")
KEEP_NOTES_DAYS = 7  # how long a killed run's record keys are kept (its records may be resent later)
PHONE_FORMATS = ("digits", "e164")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_EXTENSION = re.compile(r"\s*(?:ext\.?|extension|x|#)\s*\d+\s*$", re.IGNORECASE)
_PHONE_CHARS = re.compile(r"^[\d\s()+\-./]+$")


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def normalize_email(value: Any) -> str | None:
    """Trimmed, lower-cased email, or None when it is not a usable address."""
    if not isinstance(value, str):
        return None
    email = value.strip().lower()
    if not email or any(c.isspace() for c in email) or email.count("@") != 1:
        return None
    local, domain = email.split("@")
    if not local or "." not in domain or domain.startswith(".") or domain.endswith("."):
        return None
    return email


def normalize_phone(value: Any, default_country_code: str | None = None) -> str | None:
    """E.164 digits without the "+" (country code first), or None when the number is not usable."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    text = _EXTENSION.sub("", value.strip())
    if not text or not _PHONE_CHARS.match(text) or "+" in text[1:]:
        return None
    if text.startswith("+") or re.sub(r"[^\d]", "", text).startswith("00"):
        digits = re.sub(r"\D", "", text.replace("(0)", ""))
        if digits.startswith("00"):
            digits = digits[2:]
    elif default_country_code:
        digits = re.sub(r"\D", "", text)
        if default_country_code == "1":
            if len(digits) == 11 and digits.startswith("1"):
                digits = digits[1:]
        elif default_country_code != "39" and digits.startswith("0"):
            digits = digits[1:]
        digits = default_country_code + digits
    else:
        return None  # a national number without its country code would hash to a useless value
    if not 7 <= len(digits) <= 15 or digits.startswith("0"):
        return None
    return digits


def _safe_name(value: str, fallback: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", str(value)).lstrip("._-")[:200]
    return cleaned or fallback


def _atomic_write(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then os.replace: readers see all or nothing."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename durable (not supported everywhere)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: str) -> str:
    """`value` made inert for spreadsheets: a leading apostrophe when it starts like a formula."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _csv_bytes(header: list[str], rows: Sequence[Sequence[str]]) -> bytes:
    """RFC 4180 CSV: CRLF line ends, so a cell holding a line break of either kind is quoted."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


class _IdentityStore:
    """Per audience, in SQLite: customer_id -> the hashes last added (deletes, which may carry no
    fields, need them), and the record keys noted with their part for sync runs not finalised yet
    (a record resent after a crash is not written twice)."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=30)
        con.execute(
            "create table if not exists identities (customer_id text primary key, hashes text not null, "
            "updated_at text not null)"
        )
        con.execute(
            "create table if not exists part_keys (idempotency_key text primary key, sync_id text not null, "
            "part text not null, noted_at text not null)"
        )
        return con

    def written_elsewhere(self, keys: Sequence[str], folder: Path) -> set[str]:
        """The keys another sync run of the audience wrote to one of its parts (a run that died before
        the ledger recorded them): noted with their part before it was written, and found only if
        that part is there, so a crash between the note and the part never hides a record."""
        if not self.path.exists():
            return set()
        found: list[tuple[str, str, str]] = []
        with self._lock:
            con = self._connect()
            try:
                for start in range(0, len(keys), 500):
                    chunk = list(keys[start : start + 500])
                    marks = ", ".join("?" * len(chunk))
                    found += con.execute(
                        f"select idempotency_key, sync_id, part from part_keys where idempotency_key in ({marks}) "
                        "and sync_id <> ?",
                        [*chunk, folder.name],
                    ).fetchall()
            finally:
                con.close()
        return {key for key, sync_id, part in found if (folder.parent / sync_id / part).exists()}

    def note_parts(self, keys: Mapping[str, str], sync_id: str) -> None:
        """Record key -> the part file it is about to be written to (before the part is written)."""
        if not keys:
            return
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._lock:
            con = self._connect()
            try:
                with con:
                    con.executemany(
                        "insert or replace into part_keys values (?, ?, ?, ?)",
                        [(k, sync_id, part, now) for k, part in keys.items()],
                    )
            finally:
                con.close()

    def forget_sync(self, sync_id: str, older_than_days: int) -> None:
        """A finished sync's notes, and every note older than `older_than_days` (housekeeping: a
        failure is logged, and only means a later full resync might leave those records out)."""
        if not self.path.exists():
            return
        cutoff = (datetime.now(UTC) - timedelta(days=older_than_days)).isoformat(timespec="seconds")
        with self._lock:
            try:
                con = self._connect()
                try:
                    with con:
                        con.execute(
                            "delete from part_keys where sync_id = ? or noted_at < ?", [sync_id, cutoff]
                        )
                finally:
                    con.close()
            except (OSError, sqlite3.Error) as exc:
                log.warning(
                    "audience state %s: could not forget the keys of sync %s: %s", self.path, sync_id, exc
                )

    def lookup(self, customer_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        if not self.path.exists():
            return {}
        out: dict[str, dict[str, str]] = {}
        with self._lock:
            con = self._connect()
            try:
                for start in range(0, len(customer_ids), 500):
                    chunk = list(customer_ids[start : start + 500])
                    marks = ", ".join("?" * len(chunk))
                    for customer, hashes in con.execute(
                        f"select customer_id, hashes from identities where customer_id in ({marks})", chunk
                    ):
                        out[customer] = json.loads(hashes)
            finally:
                con.close()
        return out

    def update(self, remember: Mapping[str, Mapping[str, str]], forget: set[str]) -> None:
        if not remember and not forget:
            return
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._lock:
            con = self._connect()
            try:
                with con:
                    con.executemany(
                        "insert or replace into identities values (?, ?, ?)",
                        [(c, json.dumps(h, sort_keys=True), now) for c, h in remember.items()],
                    )
                    con.executemany("delete from identities where customer_id = ?", [(c,) for c in forget])
            finally:
                con.close()


class AudienceFilesDestination(DestinationDefaults):
    kind = "audience_files"
    idempotent_delivery = True  # a resent batch rewrites its own part; rows are deduplicated
    encoded_batches = False

    def __init__(self, name: str, config: Mapping[str, Any]):
        self.name = name
        cfg = dict(config or {})
        self._problems: list[tuple[str, str]] = []

        directory = cfg.get("directory")
        if not directory or not isinstance(directory, str | os.PathLike):
            self._problems.append(("directory", "is required (the folder audience files are written to)"))
            directory = "."
        self.directory = Path(directory)

        self.audience = cfg.get("audience")
        if self.audience is not None and (
            not isinstance(self.audience, str) or not _SAFE_NAME.match(self.audience)
        ):
            self._problems.append(("audience", "must be a file stem of letters, digits, '.', '_' and '-'"))

        identifiers = cfg.get("identifiers", list(IDENTIFIERS))
        if isinstance(identifiers, str):
            identifiers = [identifiers]
        if (
            not isinstance(identifiers, list | tuple)
            or not identifiers
            or any(i not in IDENTIFIERS for i in identifiers)
            or len(set(identifiers)) != len(identifiers)
        ):
            self._problems.append(("identifiers", f"must be a non-empty list of {', '.join(IDENTIFIERS)}"))
            identifiers = list(IDENTIFIERS)
        self.identifiers = [i for i in IDENTIFIERS if i in identifiers]  # fixed column order

        self.include_customer_id = cfg.get("include_customer_id", False)
        if not isinstance(self.include_customer_id, bool):
            self._problems.append(("include_customer_id", "must be true or false"))
            self.include_customer_id = False

        code = cfg.get("default_country_code")
        if code is not None:
            code = str(code).strip().lstrip("+")
            if not re.fullmatch(r"[1-9]\d{0,2}", code):
                self._problems.append(
                    ("default_country_code", "must be a country calling code such as 1 or 44")
                )
                code = None
        self.default_country_code: str | None = code

        self.phone_format = cfg.get("phone_format", "digits")
        if self.phone_format not in PHONE_FORMATS:
            self._problems.append(("phone_format", f"must be one of {', '.join(PHONE_FORMATS)}"))
            self.phone_format = "digits"

        size = cfg.get("max_batch_size", 5000)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            self._problems.append(("max_batch_size", "must be a positive integer"))
            size = 5000
        self.max_batch_size = size

        self.header = (["customer_id"] if self.include_customer_id else []) + [
            f"{i}_sha256" for i in self.identifiers
        ]
        state_dir = cfg.get("state_dir")
        if state_dir is not None and (not state_dir or not isinstance(state_dir, str | os.PathLike)):
            self._problems.append(("state_dir", "must be a folder path"))
            state_dir = None
        self.state_dir = Path(state_dir) if state_dir else self.directory / ".state"

        self._validated = False
        self._lock = threading.Lock()
        self._stores: dict[str, _IdentityStore] = {}

    @classmethod
    def from_config(
        cls, name: str, config: Mapping[str, Any], env: Mapping[str, str] | None = None
    ) -> AudienceFilesDestination:
        return cls(name, config)  # names no secret: `env` is not needed

    def validate(self) -> None:
        """Raise ConfigError naming the destination and the field; checks config only (no file system)."""
        if self._problems:
            field, text = self._problems[0]
            raise ConfigError(f"destination {self.name}: {field} {text}")
        self._validated = True

    def close(self) -> None:
        pass

    def sync_dir(self, context: SyncContext) -> Path:
        """{directory}/{audience}/{sync_id}: where one sync's files go."""
        audience = self.audience or _safe_name(context.segment, "audience")
        return self.directory / audience / _safe_name(context.sync_id, "sync")

    # ------------------------------------------------------------------ sending

    def _hashes(self, fields: Mapping[str, Any]) -> dict[str, str]:
        out: dict[str, str] = {}
        if "email" in self.identifiers:
            email = normalize_email(fields.get("email"))
            if email:
                out["email"] = sha256_hex(email)
        if "phone" in self.identifiers:
            phone = normalize_phone(fields.get("phone"), self.default_country_code)
            if phone:
                out["phone"] = sha256_hex(("+" if self.phone_format == "e164" else "") + phone)
        return out

    def _store(self, audience: str) -> _IdentityStore:
        with self._lock:
            store = self._stores.get(audience)
            if store is None:
                store = self._stores[audience] = _IdentityStore(self.state_dir / f"{audience}.sqlite3")
            return store

    def send_batch(self, records: Sequence[OutboundRecord], context: SyncContext) -> list[RecordResult]:
        if not self._validated:
            self.validate()
        target = self.sync_dir(context)
        store = self._store(target.parent.name)
        missing = f"no {' or '.join(self.identifiers)} to hash"
        results: list[RecordResult] = []
        parts: dict[str, list[list[str]]] = {"add": [], "remove": []}
        written: list[int] = []  # indexes of results that depend on the write
        remember: dict[str, dict[str, str]] = {}
        forget: set[str] = set()
        try:
            # deletes from the planner carry no fields: use the hashes remembered when the customer was added
            wanted = [str(r.customer_id) for r in records if r.action == "delete"]
            known = store.lookup(wanted) if wanted else {}
            # a run that died after writing a part but before the ledger recorded it: the rerun
            # resends those records; they are in that run's (unfinished) files, so not written again
            done = store.written_elsewhere([r.idempotency_key for r in records], target)
        except (OSError, sqlite3.Error) as exc:
            error = (
                f"could not read the identity state: {getattr(exc, 'strerror', None) or type(exc).__name__}"
            )
            return [_failed(r, error, retryable=True) for r in records]
        batch_hash = sha256_hex("\n".join(sorted(r.idempotency_key for r in records)))[:16]
        noted: dict[str, str] = {}  # record key -> the part it goes to
        for record in records:
            if record.action not in ("upsert", "send", "delete"):
                results.append(_failed(record, f"unsupported action {record.action!r}"))
                continue
            customer = str(record.customer_id)
            hashes = self._hashes(record.fields or {})
            if record.action == "delete":
                hashes = hashes or remember.get(customer) or known.get(customer) or {}
            if not hashes:
                results.append(_failed(record, missing))
                continue
            row = ([csv_safe(customer)] if self.include_customer_id else []) + [
                hashes.get(i, "") for i in self.identifiers
            ]
            kind = "remove" if record.action == "delete" else "add"
            if record.action == "delete":
                remember.pop(customer, None)
                forget.add(customer)
            else:
                remember[customer] = hashes
                forget.discard(customer)
            if record.idempotency_key not in done:  # else it is in a killed run's part already
                parts[kind].append(row)
                noted[record.idempotency_key] = f"{kind}-part-{batch_hash}.csv"
            written.append(len(results))
            results.append(RecordResult(record.idempotency_key, "sent"))
        if not written:
            return results

        try:
            store.note_parts(noted, target.name)  # before the parts, see written_elsewhere
            target.mkdir(parents=True, exist_ok=True)
            for kind, rows in parts.items():
                if rows:
                    _atomic_write(target / f"{kind}-part-{batch_hash}.csv", _csv_bytes(self.header, rows))
            store.update(remember, forget)
        except (OSError, sqlite3.Error) as exc:
            error = f"could not write audience file: {getattr(exc, 'strerror', None) or type(exc).__name__}"
            for i in written:
                results[i] = RecordResult(results[i].idempotency_key, "failed", retryable=True, error=error)
        return results

    # ------------------------------------------------------------------ end of sync

    def finalize(self, context: SyncContext) -> dict[str, Any] | None:
        """Merge the sync's parts into add.csv and remove.csv and write manifest.json; returns the
        manifest. Folders of the same audience that a killed run left without a manifest are
        finished too."""
        target = self.sync_dir(context)
        store = self._store(target.parent.name)
        with self._lock:
            for folder in self._unfinished(target):
                recovered = replace(context, sync_id=folder.name)
                if self._finalize(folder, recovered, recovered_by=context.sync_id) is not None:
                    log.warning(
                        "audience %s: finished the files of sync %s, which stopped before finalising",
                        folder.parent.name,
                        folder.name,
                    )
            manifest = self._finalize(target, context) if target.is_dir() else None
            # this run recorded every record it wrote; a killed run's unrecorded ones may be resent
            # by any later run (when this run's resend failed), so its notes stay until they expire
            store.forget_sync(target.name, older_than_days=KEEP_NOTES_DAYS)
            return manifest

    @staticmethod
    def _unfinished(target: Path) -> list[Path]:
        """The audience's other sync folders with parts and no manifest (the runs that wrote them died)."""
        if not target.parent.is_dir():
            return []
        return [
            folder
            for folder in sorted(target.parent.iterdir())
            if folder != target
            and folder.is_dir()
            and not folder.name.startswith(".")
            and not (folder / "manifest.json").exists()
            and any(folder.glob("*-part-*.csv"))
        ]

    def _finalize(
        self, target: Path, context: SyncContext, recovered_by: str | None = None
    ) -> dict[str, Any] | None:
        files: dict[str, Any] = {}
        any_parts = False
        for kind in ("add", "remove"):
            rows: dict[tuple[str, ...], None] = {}
            part_info = []
            for part in sorted(target.glob(f"{kind}-part-*.csv")):
                with part.open(newline="", encoding="utf-8") as fh:
                    reader = csv.reader(fh)
                    next(reader, None)  # header
                    part_rows = [tuple(r) for r in reader if r]
                part_info.append({"file": part.name, "rows": len(part_rows)})
                rows.update(dict.fromkeys(part_rows))
            any_parts = any_parts or bool(part_info)
            files[kind] = {"file": f"{kind}.csv", "rows": len(rows), "parts": part_info, "_rows": rows}
        if not any_parts:
            return None
        for info in files.values():
            _atomic_write(target / info["file"], _csv_bytes(self.header, list(info.pop("_rows"))))
        manifest = {
            "audience": target.parent.name,
            "sync_id": context.sync_id,
            "segment": context.segment,
            "destination": self.name,
            "mode": context.mode,
            "columns": self.header,
            "hash": "sha256",
            "normalisation": {
                "email": "trimmed, lower-cased (gmail dots kept)",
                "phone": (
                    "E.164 with the +" if self.phone_format == "e164" else "E.164 digits without the +"
                ),
            },
            "files": files,
            "finalized_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        if recovered_by is not None:
            manifest["recovered_by"] = recovered_by
        _atomic_write(target / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
        return manifest


def _failed(record: OutboundRecord, error: str, *, retryable: bool = False) -> RecordResult:
    return RecordResult(record.idempotency_key, "failed", retryable=retryable, error=error)
