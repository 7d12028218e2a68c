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
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from activation.warehouse import literal, quote_identifier
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
    seconds: float = 0.0

    @property
    def total_rows(self) -> int:
        return sum(e.rows for e in self.entities.values())

    @property
    def total_files(self) -> int:
        return sum(e.files for e in self.entities.values())

    @property
    def rejects(self) -> int:
        return len(self.no_entity) + sum(e.rejected_files + e.rejected_rows for e in self.entities.values())


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


def _create_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"create schema if not exists {SCHEMA}")
    for entity in ENTITIES:
        cols = ", ".join(f"{quote_identifier(c)} varchar" for c in entity.column_names)
        con.execute(
            f"create or replace table {SCHEMA}.{entity.name} ({cols}, _file varchar not null, _row bigint not null)"
        )
    con.execute(
        f"""create or replace table {SCHEMA}.load_rejects (
            entity varchar not null, _file varchar not null, _row bigint,
            field varchar, value varchar, reason varchar not null)"""
    )
    con.execute(
        f"""create or replace table {SCHEMA}.files (
            entity varchar not null, _file varchar not null, format varchar not null,
            rows bigint not null, status varchar not null, reason varchar, encoding varchar,
            loaded_at timestamp not null, bytes bigint)"""
    )


def _tabular_source(path: Path, fmt: str) -> tuple[str, str]:
    """FROM-clause source of a CSV or Parquet file plus its row-number expression."""
    lit = literal(str(path))
    if fmt == "parquet":
        return f"read_parquet({lit}, file_row_number=true)", "file_row_number + 1"
    return (
        f"read_csv({lit}, all_varchar=true, header=true, null_padding=true, strict_mode=false{{parallel}})",
        "row_number() over ()",
    )


def _load_tabular(
    con: duckdb.DuckDBPyConnection, entity: Entity, path: Path, rel: str, fmt: str
) -> tuple[int, str | None]:
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
        return 0, f"file cannot be read as {fmt}: {_first_line(last_error)}"

    by_lower = {c.strip().lower(): c for c in present}
    missing = [c for c in entity.required_columns if c not in by_lower]
    if missing:
        return 0, (
            f"required column(s) {', '.join(missing)} missing (found: {', '.join(present) or 'none'}); "
            f"see the landing-zone table in the README"
        )
    select = ", ".join(
        f"cast({quote_identifier(by_lower[c])} as varchar)" if c in by_lower else "null"
        for c in entity.column_names
    )
    con.execute(f"insert into {SCHEMA}.{entity.name} select {select}, {literal(rel)}, {row_expr} from {src}")
    return _count(con, entity, rel), None


def _load_jsonl(
    con: duckdb.DuckDBPyConnection, entity: Entity, path: Path, rel: str
) -> tuple[int, str | None]:
    lines = (
        f"select row_number() over () as _row, line, try_cast(line as json) as j "
        f"from read_csv({literal(str(path))}, columns={{'line': 'VARCHAR'}}, header=false, "
        f"delim='\x1f', quote='', escape='', auto_detect=false)"
    )
    try:  # the only statement that reads the file: nothing is inserted before it succeeds
        con.execute(f"create or replace temp table _jsonl as {lines}")
    except duckdb.Error as exc:
        return 0, f"file cannot be read as JSON Lines: {_first_line(exc)}"
    con.execute("alter table _jsonl add column ok boolean")
    con.execute("update _jsonl set ok = coalesce(json_type(j) = 'OBJECT', false)")
    select = ", ".join(f"json_extract_string(j, {literal('$.' + c)})" for c in entity.column_names)
    con.execute(
        f"insert into {SCHEMA}.{entity.name} select {select}, {literal(rel)}, _row from _jsonl where ok"
    )
    con.execute(
        f"""insert into {SCHEMA}.load_rejects
            select {literal(entity.name)}, {literal(rel)}, _row, null, left(line, 200),
                   case when coalesce(trim(line), '') = '' then 'empty line'
                        when j is null then 'line is not valid JSON'
                        else 'line is JSON but not an object' end
            from _jsonl where not ok"""
    )
    con.execute("drop table _jsonl")
    return _count(con, entity, rel), None


def _count(con: duckdb.DuckDBPyConnection, entity: Entity, rel: str) -> int:
    row = con.execute(f"select count(*) from {SCHEMA}.{entity.name} where _file = ?", [rel]).fetchone()
    return int(row[0]) if row else 0


def _first_line(exc: Exception | None) -> str:
    return str(exc).strip().splitlines()[0] if exc else "unknown error"


def load_landing_zone(
    raw_dir: Path | str, con: duckdb.DuckDBPyConnection, entities: Iterable[Entity] = ENTITIES
) -> LandingReport:
    """Replace the ``landing`` schema with a snapshot of every file under ``raw_dir``."""
    started = time.monotonic()
    raw = Path(raw_dir).resolve()
    if not raw.is_dir():
        raise LandingError(f"raw dir {raw} does not exist (set --raw-dir or TIDELINE_RAW_DIR)")
    report = LandingReport(raw_dir=str(raw))
    _create_tables(con)
    found = inventory(raw)
    with tempfile.TemporaryDirectory(prefix="tideline-landing-") as scratch:
        for entity in entities:
            result = EntityResult(entity.name)
            report.entities[entity.name] = result
            for path in found.files[entity.name]:
                _record(con, report, result, _load_file(con, entity, raw, path, Path(scratch)))
            for path in found.unsupported[entity.name]:
                rel = path.relative_to(raw).as_posix()
                fmt = path.suffix.lower().lstrip(".") or "unknown"
                _record(
                    con,
                    report,
                    result,
                    FileResult(entity.name, rel, fmt, 0, "rejected", unsupported_reason(path)),
                )
            row = con.execute(
                f"select count(*) from {SCHEMA}.load_rejects where entity = ? and _row is not null",
                [entity.name],
            ).fetchone()
            result.rejected_rows = int(row[0]) if row else 0
    for path in found.no_entity:
        rel = path.relative_to(raw).as_posix()
        fmt = FILE_FORMATS.get(path.suffix.lower(), path.suffix.lower().lstrip(".") or "unknown")
        _record(con, report, None, FileResult(NO_ENTITY, rel, fmt, 0, "rejected", no_entity_reason(rel)))
    orders = report.entities.get("commerce_orders")
    if orders is not None and orders.rows == 0:
        log.warning("landing: no order rows found under %s/commerce/orders; marts will be empty", raw)
    report.seconds = time.monotonic() - started
    return report


def _load_file(
    con: duckdb.DuckDBPyConnection, entity: Entity, raw: Path, path: Path, scratch: Path
) -> FileResult:
    """Load one file of an entity; what makes it unusable as a whole is the result's reason."""
    rel = path.relative_to(raw).as_posix()
    fmt = FILE_FORMATS[path.suffix.lower()]
    size = path.stat().st_size  # before reading: what is appended from here on was not read
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
    rows = 0
    if reason is None:
        try:
            if fmt == "jsonl":
                rows, reason = _load_jsonl(con, entity, source, rel)
            else:
                rows, reason = _load_tabular(con, entity, source, rel, fmt)
        finally:
            if source != path:
                source.unlink(missing_ok=True)
    status = "rejected" if reason else "loaded"
    return FileResult(entity.name, rel, fmt, rows, status, reason, used, sample, size)


def _record(
    con: duckdb.DuckDBPyConnection, report: LandingReport, result: EntityResult | None, file: FileResult
) -> None:
    """Write a file's outcome to landing.files (and landing.load_rejects when it was rejected)."""
    if file.reason:
        con.execute(
            f"insert into {SCHEMA}.load_rejects values (?, ?, null, null, left(?, 200), ?)",
            [file.entity, file.file, file.value, file.reason],
        )
        log.warning("landing: %s rejected: %s", file.file, file.reason)  # reasons hold no file content
    con.execute(
        f"insert into {SCHEMA}.files values (?, ?, ?, ?, ?, ?, ?, now()::timestamp, ?)",
        [file.entity, file.file, file.format, file.rows, file.status, file.reason, file.encoding, file.size],
    )
    if result is None:
        report.no_entity.append(file)
        return
    report.files.append(file)
    result.files += 1
    result.rows += file.rows
    result.rejected_files += bool(file.reason)
