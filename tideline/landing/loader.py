"""Snapshot the landing zone into the warehouse's ``landing`` schema.

Every landing file is read as text, column by column as the contract names them,
with the file it came from (``_file``, relative to the raw dir) and its 1-based
record number (``_row``: the first record after a CSV header, the first Parquet
row, the first JSON line). Staging models type and validate these text columns,
so every bad value can be reported with file, row and field, and nothing is lost
before dbt sees it.

What cannot be read at all goes to ``landing.load_rejects`` with a reason:
a whole file that does not parse, is empty, is not in its encoding (UTF-8 unless
declared, see ``encoding.py``) or misses a required column, a JSON line that is not
an object, and every file that belongs to no entity (outside the entity folders, or
in a format Tideline does not read), with the folders and formats expected. The rest
of the load goes on. Files and folders whose name starts with ``_`` or ``.`` are
ignored on purpose: the demo's ground truth (``_truth/``), encoding sidecars, Spark's
``_SUCCESS`` markers, hidden files.

An entity with no files gets an empty table, so the dbt models run on any subset
of the entities (orders alone is enough).

Incremental: ``landing.files`` is the load manifest, one row per file with its size,
modification time and the encoding its folder declares when it was read, and when it was
loaded. A run reads only what changed since: a new file is loaded, a changed one (any of
those three differs) has its rows replaced whole, a JSON Lines file that only grew (the
receiver's and the journey feed's append-only logs: the bytes read before are unchanged
and ended with a line break) gets only its new lines, numbered on from the last, an
unchanged file is not opened, and a file that disappeared has its rows removed and is
reported. Each file's change is one transaction with its manifest row, so a run killed
half-way leaves every file either as it was or as it is now. ``landing.loads`` keeps the
history: what each run loaded, appended, replaced or removed, when, with rows and bytes.
A change of an entity's columns (a new contract) reloads that entity; ``full_refresh``
reloads everything.

A ``mirror`` (the postgres target: ``tideline/landing/postgres.py``) gets every file's change
inside that file's transaction, before it commits, and a last word once the load is done: this
module still decides alone what changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import duckdb

from activation.warehouse import literal, quote_identifier, transaction
from tideline.landing import encoding
from tideline.landing.contract import ENTITIES, FILE_FORMATS, Entity

log = logging.getLogger(__name__)

SCHEMA = "landing"
NO_ENTITY = "no_entity"  # load_rejects.entity of a file that belongs to no entity


@dataclass
class FileResult:
    entity: str
    file: str
    format: str
    rows: int
    status: str  # loaded | rejected
    reason: str | None = None
    encoding: str | None = None  # how a text file was read, e.g. "utf-8", "cp1252 (crm/_encoding.txt)"
    value: str | None = None  # file content at fault (never logged), e.g. the line that is not UTF-8
    size: int | None = None  # bytes before it was read (the journey feed tails JSON Lines from there)
    action: str = "loaded"  # loaded (new) | replaced | appended | unchanged | not_read (rejected unread)
    rows_added: int = 0  # rows this run put in the landing table (all of them unless appended/unchanged)
    records: int = 0  # records read (JSON Lines: lines, the rejected ones too): where an append numbers on
    mtime_ns: int | None = None
    declared: str = ""  # the encoding its folder declared when read ('' for none)
    boundary: str | None = None  # sha256 of the last bytes read: an append is checked against it


@dataclass
class EntityResult:
    entity: str
    files: int = 0
    rows: int = 0
    rejected_files: int = 0
    rejected_rows: int = 0


@dataclass
class LandingReport:
    raw_dir: str
    entities: dict[str, EntityResult] = field(default_factory=dict)
    files: list[FileResult] = field(default_factory=list)
    no_entity: list[FileResult] = field(default_factory=list)  # files outside every entity, rejected
    deleted: list[str] = field(default_factory=list)  # files loaded before that are gone now
    full_refresh: bool = False  # every file was read (asked for, or the manifest could not be used)
    seconds: float = 0.0
    mirror_repaired: list[str] = field(default_factory=list)  # files the mirror found different at the end

    def actions(self) -> dict[str, int]:
        """Files by what this run did with them: loaded, replaced, appended, unchanged, deleted."""
        counts: dict[str, int] = {}
        for f in self.files:
            counts[f.action] = counts.get(f.action, 0) + 1
        if self.deleted:
            counts["deleted"] = len(self.deleted)
        return counts

    @property
    def rows_added(self) -> int:
        return sum(f.rows_added for f in self.files)

    @property
    def total_rows(self) -> int:
        return sum(e.rows for e in self.entities.values())

    @property
    def total_files(self) -> int:
        return sum(e.files for e in self.entities.values())

    @property
    def rejects(self) -> int:
        return len(self.no_entity) + sum(e.rejected_files + e.rejected_rows for e in self.entities.values())


class Mirror(Protocol):
    """Another warehouse kept equal to the landing schema (tideline/landing/postgres.py)."""

    def prepare(self, con: duckdb.DuckDBPyConnection) -> None:
        """Before the first file: the landing tables exist, shaped as they will be written."""

    def file_changed(
        self, con: duckdb.DuckDBPyConnection, load_id: str, file: str, entity: str, after_row: int = 0
    ) -> None:
        """Inside the file's transaction: its rows (after `after_row` for an append), rejects,
        manifest row and history row are written; raise to roll the file back."""

    def file_removed(self, con: duckdb.DuckDBPyConnection, load_id: str, file: str, entity: str) -> None:
        """Inside the transaction removing a file that is gone."""

    def finish(self, con: duckdb.DuckDBPyConnection, load_id: str, at: dt.datetime) -> list[str]:
        """After the load: anything still different is made equal; returns what it repaired."""


class LandingError(Exception):
    """The landing zone as a whole cannot be used (e.g. the raw dir does not exist)."""


IGNORED_PREFIXES = (".", "_")  # files and folders named so are never read nor reported
TEXT_SNIFF_BYTES = 1 << 16  # a text file this small is checked for being blank


@dataclass
class Inventory:
    """Every file below the raw dir: per entity the files to load, and what belongs to no entity."""

    files: dict[str, list[Path]] = field(default_factory=dict)  # entity name → readable files
    unsupported: dict[str, list[Path]] = field(default_factory=dict)  # entity name → other formats
    no_entity: list[Path] = field(default_factory=list)


def inventory(raw_dir: Path) -> Inventory:
    """Walk the raw dir once (skipping names that start with ``_`` or ``.``) and sort every file
    into its entity by folder, in a stable order (by path below the raw dir)."""
    found = Inventory({e.name: [] for e in ENTITIES}, {e.name: [] for e in ENTITIES})
    deepest_first = sorted(ENTITIES, key=lambda e: -len(e.path.split("/")))
    paths: list[Path] = []
    for folder, dirs, names in os.walk(raw_dir, followlinks=True):  # as rglob did: linked folders count
        dirs[:] = [d for d in dirs if not d.startswith(IGNORED_PREFIXES)]
        paths += [Path(folder) / n for n in names if not n.startswith(IGNORED_PREFIXES)]
    for path in sorted(paths, key=lambda p: p.relative_to(raw_dir).as_posix()):
        parts = path.relative_to(raw_dir).parts
        entity = next(
            (e for e in deepest_first if parts[:-1][: len(e.path.split("/"))] == tuple(e.path.split("/"))),
            None,
        )
        if entity is None:
            found.no_entity.append(path)
        elif path.suffix.lower() in FILE_FORMATS:
            found.files[entity.name].append(path)
        else:
            found.unsupported[entity.name].append(path)
    return found


def _expected_folders() -> str:
    return ", ".join(f"{e.path}/" for e in ENTITIES)


def no_entity_reason(rel: str) -> str:
    """Why a file outside every entity folder is not loaded, with the folders that are expected."""
    parts = rel.split("/")
    where = "the top of the raw dir" if len(parts) == 1 else f"folder {'/'.join(parts[:-1])}/"
    names = [p.lower() for p in parts[:-1]] + [Path(parts[-1]).stem.lower()]
    guess = next((e.path for e in ENTITIES for n in names if n == e.path.split("/")[-1]), None)
    return (
        f"file belongs to no entity: {where} is not an entity folder"
        + (f" (did you mean {guess}/?)" if guess else "")
        + f"; move it into one of {_expected_folders()} (sub-folders below them are fine; "
        "files and folders whose name starts with _ or . are ignored)"
    )


def unsupported_reason(path: Path) -> str:
    suffix = "".join(path.suffixes[-2:]).lower() or "no extension"
    return (
        f"not a format Tideline reads ({suffix}): save it as CSV (.csv, with a header row), "
        "Parquet (.parquet) or JSON Lines (.jsonl, .ndjson, .json)"
    )


def _empty_reason(path: Path) -> str | None:
    """Why a file is empty, or None: 0 bytes, or (text formats) nothing but blank lines."""
    size = path.stat().st_size
    if size == 0:
        return "file is empty (0 bytes): there is nothing to load; export it again, or remove it"
    if size <= TEXT_SNIFF_BYTES and FILE_FORMATS.get(path.suffix.lower()) != "parquet":
        head = path.read_bytes()
        if not head.lstrip(b"\xef\xbb\xbf\xff\xfe").replace(b"\x00", b"").strip():
            return "file is empty (blank lines only): there is nothing to load; export it again, or remove it"
    return None


MANIFEST_COLUMNS = (
    ("entity", "varchar not null"),
    ("_file", "varchar not null"),
    ("format", "varchar not null"),
    ("rows", "bigint not null"),
    ("status", "varchar not null"),
    ("reason", "varchar"),
    ("encoding", "varchar"),
    ("loaded_at", "timestamp not null"),
    ("bytes", "bigint"),
    ("mtime_ns", "bigint"),
    ("records", "bigint"),
    ("declared_encoding", "varchar"),
    ("boundary_hash", "varchar"),
    ("action", "varchar"),
    ("checked_at", "timestamp"),
)
REJECT_COLUMNS = (
    ("entity", "varchar not null"),
    ("_file", "varchar not null"),
    ("_row", "bigint"),
    ("field", "varchar"),
    ("value", "varchar"),
    ("reason", "varchar not null"),
)
LOADS_COLUMNS = (
    ("load_id", "varchar not null"),
    ("loaded_at", "timestamp not null"),
    ("entity", "varchar not null"),
    ("_file", "varchar not null"),
    ("action", "varchar not null"),
    ("rows_added", "bigint not null"),
    ("rows", "bigint not null"),
    ("bytes", "bigint"),
)
BOUNDARY_BYTES = 4096  # the last bytes read of a file, hashed: an append must leave them unchanged
NOT_READ = "not_read"  # a file rejected without being opened (no entity, a format Tideline does not read)


@dataclass(frozen=True)
class _Known:
    """A file's row of the manifest (landing.files) from the last run that read it."""

    entity: str
    file: str
    format: str
    rows: int
    status: str
    reason: str | None
    encoding: str | None
    size: int | None
    mtime_ns: int | None
    records: int
    declared: str
    boundary: str | None
    action: str | None


def _columns_of(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    rows = con.execute(
        """select column_name from information_schema.columns
           where table_schema = ? and table_name = ? order by ordinal_position""",
        [SCHEMA, table],
    ).fetchall()
    return [r[0] for r in rows]


def _create(con: duckdb.DuckDBPyConnection, table: str, columns: tuple[tuple[str, str], ...]) -> None:
    body = ", ".join(f"{quote_identifier(name)} {kind}" for name, kind in columns)
    con.execute(f"create or replace table {SCHEMA}.{table} ({body})")


def _prepare(
    con: duckdb.DuckDBPyConnection, entities: Iterable[Entity], full_refresh: bool
) -> tuple[dict[str, _Known], bool]:
    """The landing schema ready for this run, and what the manifest knew (empty: read everything).
    A manifest or rejects table of another shape (a warehouse from before the manifest) is a full
    refresh; an entity table whose columns differ from its contract is recreated and reloaded."""
    con.execute(f"create schema if not exists {SCHEMA}")
    shapes_ok = _columns_of(con, "files") == [c for c, _ in MANIFEST_COLUMNS] and _columns_of(
        con, "load_rejects"
    ) == [c for c, _ in REJECT_COLUMNS]
    full = full_refresh or not shapes_ok
    if full:
        _create(con, "files", MANIFEST_COLUMNS)
        _create(con, "load_rejects", REJECT_COLUMNS)
    if _columns_of(con, "loads") != [c for c, _ in LOADS_COLUMNS]:
        _create(con, "loads", LOADS_COLUMNS)
    for entity in ENTITIES:
        expected = [*entity.column_names, "_file", "_row"]
        if full or _columns_of(con, entity.name) != expected:
            cols = ", ".join(f"{quote_identifier(c)} varchar" for c in entity.column_names)
            con.execute(
                f"create or replace table {SCHEMA}.{entity.name} ({cols}, _file varchar not null, _row bigint not null)"
            )
            con.execute(f"delete from {SCHEMA}.files where entity = ?", [entity.name])
            con.execute(f"delete from {SCHEMA}.load_rejects where entity = ?", [entity.name])
    # files rejected unopened are judged again from their names: their rows are written anew
    con.execute(
        f"""delete from {SCHEMA}.load_rejects where _row is null and _file in
            (select _file from {SCHEMA}.files where action = ?)""",
        [NOT_READ],
    )
    con.execute(f"delete from {SCHEMA}.files where action = ?", [NOT_READ])
    names = [e.name for e in entities]
    rows = con.execute(
        f"""select entity, _file, format, rows, status, reason, encoding, bytes, mtime_ns,
                   coalesce(records, rows), coalesce(declared_encoding, ''), boundary_hash, action
            from {SCHEMA}.files where list_contains(?, entity)""",
        [names],
    ).fetchall()
    return {r[1]: _Known(*r) for r in rows}, full


def _tabular_source(path: Path, fmt: str) -> tuple[str, str]:
    """FROM-clause source of a CSV or Parquet file plus its row-number expression."""
    lit = literal(str(path))
    if fmt == "parquet":
        return f"read_parquet({lit}, file_row_number=true)", "file_row_number + 1"
    return (
        f"read_csv({lit}, all_varchar=true, header=true, null_padding=true, strict_mode=false{{parallel}})",
        "row_number() over ()",
    )


def _probe_tabular(
    con: duckdb.DuckDBPyConnection, entity: Entity, path: Path, fmt: str
) -> tuple[str, str, str, str | None] | str:
    """(the INSERT's select list, its source, its row expression, the source to try if the rows
    fail to read: the serial CSV reader after the parallel one, else None) of a readable CSV or
    Parquet file with the required columns, or why it cannot be loaded. Reads the header only,
    outside the write's transaction (a failed statement would abort it)."""
    source, row_expr = _tabular_source(path, fmt)
    attempts = [source.format(parallel="")]
    if fmt == "csv":
        # quoted newlines with ragged rows need the serial CSV reader
        attempts.append(source.format(parallel=", parallel=false"))
    last_error: Exception | None = None
    for src in attempts:
        try:
            present = [d[0] for d in con.execute(f"select * from {src} limit 0").description]
            break
        except duckdb.Error as exc:
            last_error = exc
    else:
        return f"file cannot be read as {fmt}: {_first_line(last_error)}"
    fallback = next(iter(attempts[attempts.index(src) + 1 :]), None)

    by_lower = {c.strip().lower(): c for c in present}
    missing = [c for c in entity.required_columns if c not in by_lower]
    if missing:
        return (
            f"required column(s) {', '.join(missing)} missing (found: {', '.join(present) or 'none'}); "
            f"see the landing-zone table in the README"
        )
    select = ", ".join(
        f"cast({quote_identifier(by_lower[c])} as varchar)" if c in by_lower else "null"
        for c in entity.column_names
    )
    return select, src, row_expr, fallback


def _read_jsonl(con: duckdb.DuckDBPyConnection, path: Path, first_row: int) -> str | None:
    """The file's lines into temp table _jsonl (numbered from `first_row`, `ok` for a JSON object),
    or why it cannot be read."""
    lines = (
        f"select {int(first_row) - 1} + row_number() over () as _row, line "
        f"from read_csv({literal(str(path))}, columns={{'line': 'VARCHAR'}}, header=false, "
        f"delim='\x1f', quote='', escape='', auto_detect=false)"
    )
    try:  # the only statement that reads the file: nothing is inserted before it succeeds
        con.execute(
            "create or replace temp table _jsonl as select _row, line, "
            f"coalesce(json_type(try_cast(line as json)) = 'OBJECT', false) as ok from ({lines})"
        )
    except duckdb.Error as exc:
        return f"file cannot be read as JSON Lines: {_first_line(exc)}"
    return None


def _insert_jsonl(con: duckdb.DuckDBPyConnection, entity: Entity, rel: str) -> tuple[int, int]:
    """_jsonl's objects into the entity's table, its other lines into load_rejects: (rows, lines).
    Each line is parsed once for all the entity's fields (a list of paths), not once per field."""
    paths = "[" + ", ".join(literal("$." + c) for c in entity.column_names) + "]"
    fields = ", ".join(f"v[{i}]" for i in range(1, len(entity.column_names) + 1))
    inserted = con.execute(
        f"""insert into {SCHEMA}.{entity.name}
            select {fields}, {literal(rel)}, _row
            from (select _row, json_extract_string(line, {paths}) as v from _jsonl where ok)"""
    ).fetchone()
    con.execute(
        f"""insert into {SCHEMA}.load_rejects
            select {literal(entity.name)}, {literal(rel)}, _row, null, left(line, 200),
                   case when coalesce(trim(line), '') = '' then 'empty line'
                        when try_cast(line as json) is null then 'line is not valid JSON'
                        else 'line is JSON but not an object' end
            from _jsonl where not ok"""
    )
    lines = con.execute("select count(*) from _jsonl").fetchone()
    return int(inserted[0]) if inserted else 0, int(lines[0]) if lines else 0


def _first_line(exc: Exception | None) -> str:
    return str(exc).strip().splitlines()[0] if exc else "unknown error"


def load_landing_zone(
    raw_dir: Path | str,
    con: duckdb.DuckDBPyConnection,
    entities: Iterable[Entity] = ENTITIES,
    *,
    full_refresh: bool = False,
    mirror: Mirror | None = None,
) -> LandingReport:
    """Bring the ``landing`` schema up to date with every file under ``raw_dir``: what changed
    since the last load (module docstring), or everything with `full_refresh`; `mirror` gets each
    change too (module docstring)."""
    started = time.monotonic()
    raw = Path(raw_dir).resolve()
    if not raw.is_dir():
        raise LandingError(f"raw dir {raw} does not exist (set --raw-dir or TIDELINE_RAW_DIR)")
    entities = list(entities)
    known, full = _prepare(con, entities, full_refresh)
    if mirror is not None:
        mirror.prepare(con)
    run = _Run(uuid.uuid4().hex, dt.datetime.now(dt.UTC).replace(tzinfo=None), mirror)
    report = LandingReport(raw_dir=str(raw), full_refresh=full)
    found = inventory(raw)
    with tempfile.TemporaryDirectory(prefix="tideline-landing-") as scratch:
        for entity in entities:
            result = EntityResult(entity.name)
            report.entities[entity.name] = result
            for path in found.files[entity.name]:
                rel = path.relative_to(raw).as_posix()
                file = _update_file(con, run, entity, raw, path, Path(scratch), known.pop(rel, None))
                _count_file(report, result, file)
            for path in found.unsupported[entity.name]:
                rel = path.relative_to(raw).as_posix()
                known.pop(rel, None)
                fmt = path.suffix.lower().lstrip(".") or "unknown"
                file = FileResult(
                    entity.name, rel, fmt, 0, "rejected", unsupported_reason(path), action=NOT_READ
                )
                _write(con, run, file, None, lambda: None)
                _count_file(report, result, file)
            row = con.execute(
                f"select count(*) from {SCHEMA}.load_rejects where entity = ? and _row is not null",
                [entity.name],
            ).fetchone()
            result.rejected_rows = int(row[0]) if row else 0
    for path in found.no_entity:
        rel = path.relative_to(raw).as_posix()
        fmt = FILE_FORMATS.get(path.suffix.lower(), path.suffix.lower().lstrip(".") or "unknown")
        file = FileResult(NO_ENTITY, rel, fmt, 0, "rejected", no_entity_reason(rel), action=NOT_READ)
        _write(con, run, file, None, lambda: None)
        report.no_entity.append(file)
    for gone in known.values():  # loaded before, not there any more
        _remove(con, run, gone)
        report.deleted.append(gone.file)
        log.warning(
            "landing: %s is gone from the landing zone: its %s rows left landing.%s",
            gone.file,
            gone.rows,
            gone.entity,
        )
    con.execute(
        f"update {SCHEMA}.files set action = 'unchanged', checked_at = ? where checked_at is distinct from ?",
        [run.at, run.at],
    )
    if mirror is not None:
        report.mirror_repaired = mirror.finish(con, run.load_id, run.at)
    orders = report.entities.get("commerce_orders")
    if orders is not None and orders.rows == 0:
        log.warning("landing: no order rows found under %s/commerce/orders; marts will be empty", raw)
    report.seconds = time.monotonic() - started
    return report


@dataclass(frozen=True)
class _Run:
    load_id: str
    at: dt.datetime  # naive UTC: every manifest and history row of the run carries it
    mirror: Mirror | None = None


def _count_file(report: LandingReport, result: EntityResult, file: FileResult) -> None:
    report.files.append(file)
    result.files += 1
    result.rows += file.rows
    result.rejected_files += bool(file.reason)


def _declared(raw: Path, path: Path) -> str:
    """The encoding the file's folder declares ('' for none): a new declaration rereads the file."""
    try:
        found = encoding.declared(raw, path)
    except encoding.EncodingProblem as problem:
        return f"unusable: {problem}"[:200]
    return found.describe() if found is not None else ""


def _boundary(path: Path, end: int) -> str | None:
    """sha256 of the BOUNDARY_BYTES before `end`, or None when they do not end a line (an append
    after them could not be told from a rewrite)."""
    if end <= 0:
        return None
    with path.open("rb") as fh:
        fh.seek(max(0, end - BOUNDARY_BYTES))
        chunk = fh.read(end - max(0, end - BOUNDARY_BYTES))
    if len(chunk) != end - max(0, end - BOUNDARY_BYTES) or not chunk.endswith(b"\n"):
        return None
    return hashlib.sha256(chunk).hexdigest()


def _update_file(
    con: duckdb.DuckDBPyConnection,
    run: _Run,
    entity: Entity,
    raw: Path,
    path: Path,
    scratch: Path,
    known: _Known | None,
) -> FileResult:
    """One file brought up to date: untouched when unchanged, its new lines when it only grew, else
    read whole (its earlier rows replaced in the same transaction)."""
    rel = path.relative_to(raw).as_posix()
    stat = path.stat()
    size, mtime, declared = stat.st_size, stat.st_mtime_ns, _declared(raw, path)
    if known is not None and (known.size, known.mtime_ns, known.declared) == (size, mtime, declared):
        return FileResult(
            entity.name, rel, known.format, known.rows, known.status, known.reason, known.encoding,
            size=size, action="unchanged", records=known.records, mtime_ns=mtime, declared=declared,
            boundary=known.boundary,
        )  # fmt: skip
    if known is not None:
        appended = _append(con, run, entity, raw, path, scratch, known, size, mtime, declared)
        if appended is not None:
            return appended
    file, pending = _read_file(con, entity, raw, path, scratch, size, mtime, declared)
    file.action = "replaced" if known is not None else "loaded"
    try:
        while True:
            try:
                _write(con, run, file, known, lambda: _insert_read(con, entity, file, pending))
                break
            except duckdb.Error as exc:
                if file.reason:
                    raise  # writing a reject failed: not a problem of the file's content
                # the header read, the rows did not (e.g. the parallel CSV reader and quoted line breaks
                # in ragged rows): the serial reader once, else the file is rejected and the load goes on
                _unread_rows(file, pending, exc)
    finally:
        if pending.transcoded is not None:
            pending.transcoded.unlink(missing_ok=True)
    return file


def _unread_rows(file: FileResult, pending: _Read, exc: duckdb.Error) -> None:
    """After a failed insert: the file set up for the serial CSV reader, or rejected with the reason."""
    file.rows = file.records = file.rows_added = 0
    if pending.serial is not None and pending.tabular is not None:
        select, _, row_expr = pending.tabular
        pending.tabular, pending.serial = (select, pending.serial, row_expr), None
        return
    pending.tabular = None
    file.status, file.reason = "rejected", f"file cannot be read as {file.format}: {_first_line(exc)}"
    file.boundary = None


def _append(
    con: duckdb.DuckDBPyConnection,
    run: _Run,
    entity: Entity,
    raw: Path,
    path: Path,
    scratch: Path,
    known: _Known,
    size: int,
    mtime: int,
    declared: str,
) -> FileResult | None:
    """The lines a JSON Lines file gained since it was read, or None when it did not only grow
    (then it is read whole)."""
    fmt = FILE_FORMATS[path.suffix.lower()]
    if (
        fmt != "jsonl"
        or known.status != "loaded"
        or known.encoding != "utf-8"
        or known.declared != declared
        or known.size is None
        or size <= known.size
        or known.boundary is None
        or _boundary(path, known.size) != known.boundary
    ):
        return None
    tail = scratch / "tail.jsonl"
    with path.open("rb") as src, tail.open("wb") as out:
        src.seek(known.size)
        remaining = size - known.size
        while remaining > 0:
            chunk = src.read(min(remaining, 1 << 20))
            if not chunk:
                break
            out.write(chunk)
            remaining -= len(chunk)
    try:
        try:
            encoding.check_utf8(raw, tail)
        except encoding.EncodingProblem:
            return None  # read whole: the error then names the file and the line
        if _read_jsonl(con, tail, known.records + 1) is not None:
            return None
        rel = path.relative_to(raw).as_posix()
        file = FileResult(
            entity.name, rel, fmt, known.rows, "loaded", None, "utf-8", size=size, action="appended",
            mtime_ns=mtime, declared=declared,
            boundary=_boundary(path, size) if path.stat().st_size == size else None,
        )  # fmt: skip

        def insert() -> None:
            added, lines = _insert_jsonl(con, entity, rel)
            file.rows, file.rows_added, file.records = known.rows + added, added, known.records + lines

        _write(con, run, file, known, insert, replace_rows=False)
        return file
    finally:
        tail.unlink(missing_ok=True)
        con.execute("drop table if exists _jsonl")


@dataclass
class _Read:
    """What reading a file left to insert: a CSV/Parquet INSERT, or the _jsonl temp table."""

    tabular: tuple[str, str, str] | None = None
    transcoded: Path | None = None
    serial: str | None = None  # the source to try if `tabular`'s rows fail to read (the serial CSV reader)


def _read_file(
    con: duckdb.DuckDBPyConnection,
    entity: Entity,
    raw: Path,
    path: Path,
    scratch: Path,
    size: int,
    mtime: int,
    declared: str,
) -> tuple[FileResult, _Read]:
    """Check and read what can be checked before writing (encoding, emptiness, header; a JSON Lines
    file's lines into _jsonl): the result says whether the file is rejected and why; the _Read
    what is left to insert."""
    rel = path.relative_to(raw).as_posix()
    fmt = FILE_FORMATS[path.suffix.lower()]
    source, used, sample = path, None, None
    reason = _empty_reason(path)
    if reason is None and fmt != "parquet":
        try:
            found = encoding.detect(raw, path)
            used = found.describe()
            if not found.is_utf8:
                source = scratch / f"utf8{path.suffix.lower()}"
                encoding.transcode(path, found, source)
        except encoding.EncodingProblem as problem:
            reason, sample = str(problem), problem.sample
    pending = _Read(transcoded=source if source != path else None)
    if reason is None:
        if fmt == "jsonl":
            reason = _read_jsonl(con, source, 1)
        else:
            probed = _probe_tabular(con, entity, source, fmt)
            if isinstance(probed, str):
                reason = probed
            else:
                select, src, row_expr, pending.serial = probed
                pending.tabular = select, src, row_expr
    # an append is later read from `size` on: only when the file did not grow while it was read
    # (else the next run reads it whole) and was read as UTF-8 JSON Lines
    grew = path.stat().st_size != size
    boundary = _boundary(path, size) if fmt == "jsonl" and used == "utf-8" and not grew else None
    file = FileResult(
        entity.name, rel, fmt, 0, "rejected" if reason else "loaded", reason, used, sample, size,
        mtime_ns=mtime, declared=declared, boundary=boundary,
    )  # fmt: skip
    if reason and pending.transcoded is not None:
        pending.transcoded.unlink(missing_ok=True)
    return file, pending


def _insert_read(con: duckdb.DuckDBPyConnection, entity: Entity, file: FileResult, pending: _Read) -> None:
    """The rows `_read_file` found, inserted (inside the file's transaction)."""
    try:
        if file.reason:
            return
        if file.format == "jsonl":
            file.rows, file.records = _insert_jsonl(con, entity, file.file)
        elif pending.tabular is not None:
            select, src, row_expr = pending.tabular
            inserted = con.execute(
                f"insert into {SCHEMA}.{entity.name} select {select}, {literal(file.file)}, {row_expr} from {src}"
            ).fetchone()  # DuckDB answers an INSERT with its row count: no scan of the table per file
            file.rows = file.records = int(inserted[0]) if inserted else 0
        file.rows_added = file.rows
    finally:
        con.execute("drop table if exists _jsonl")


def _write(
    con: duckdb.DuckDBPyConnection,
    run: _Run,
    file: FileResult,
    known: _Known | None,
    insert,  # noqa: ANN001 - Callable[[], None]: the file's rows into its table
    *,
    replace_rows: bool = True,
) -> None:
    """One transaction: the file's earlier rows and rejects out (unless appending), its rows in,
    its manifest row and its history row written. A run killed before the commit changed nothing."""
    with transaction(con):
        if known is not None and replace_rows:
            if file.entity != NO_ENTITY:
                con.execute(f"delete from {SCHEMA}.{file.entity} where _file = ?", [file.file])
            con.execute(f"delete from {SCHEMA}.load_rejects where _file = ?", [file.file])
        insert()
        if file.reason:
            con.execute(
                f"insert into {SCHEMA}.load_rejects values (?, ?, null, null, left(?, 200), ?)",
                [file.entity, file.file, file.value, file.reason],
            )
        con.execute(f"delete from {SCHEMA}.files where _file = ?", [file.file])
        con.execute(
            f"insert into {SCHEMA}.files values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                file.entity, file.file, file.format, file.rows, file.status, file.reason, file.encoding,
                run.at, file.size, file.mtime_ns, file.records, file.declared, file.boundary, file.action, run.at,
            ],
        )  # fmt: skip
        if file.action != NOT_READ:
            con.execute(
                f"insert into {SCHEMA}.loads values (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    run.load_id,
                    run.at,
                    file.entity,
                    file.file,
                    file.action,
                    file.rows_added,
                    file.rows,
                    file.size,
                ],
            )
        if run.mirror is not None:
            after_row = 0 if replace_rows or known is None else known.records
            run.mirror.file_changed(con, run.load_id, file.file, file.entity, after_row)
    if file.reason:
        log.warning("landing: %s rejected: %s", file.file, file.reason)  # reasons hold no file content


def _remove(con: duckdb.DuckDBPyConnection, run: _Run, gone: _Known) -> None:
    """A file loaded before and gone now: its rows, rejects and manifest row out, in one transaction."""
    with transaction(con):
        if gone.entity != NO_ENTITY:
            con.execute(f"delete from {SCHEMA}.{gone.entity} where _file = ?", [gone.file])
        con.execute(f"delete from {SCHEMA}.load_rejects where _file = ?", [gone.file])
        con.execute(f"delete from {SCHEMA}.files where _file = ?", [gone.file])
        con.execute(
            f"insert into {SCHEMA}.loads values (?, ?, ?, ?, 'deleted', 0, 0, null)",
            [run.load_id, run.at, gone.entity, gone.file],
        )
        if run.mirror is not None:
            run.mirror.file_removed(con, run.load_id, gone.file, gone.entity)
