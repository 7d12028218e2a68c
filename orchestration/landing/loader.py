"""Snapshot the landing zone into the warehouse's ``landing`` schema.

Every landing file is read as text, column by column as the contract names them,
with the file it came from (``_file``, relative to the raw dir) and its 1-based
record number (``_row``: the first record after a CSV header, the first Parquet
row, the first JSON line). Staging models type and validate these text columns,
so every bad value can be reported with file, row and field, and nothing is lost
before dbt sees it.

What cannot be read at all goes to ``landing.load_rejects`` with a reason:
a whole file that does not parse, a file missing a required column, a JSON line
that is not an object. The rest of the load goes on.

An entity with no files gets an empty table, so the dbt models run on any subset
of the entities (orders alone is enough).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from orchestration.landing.contract import ENTITIES, FILE_FORMATS, Entity

log = logging.getLogger(__name__)

SCHEMA = "landing"


@dataclass
class FileResult:
    entity: str
    file: str
    format: str
    rows: int
    status: str  # loaded | rejected
    reason: str | None = None


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
    seconds: float = 0.0

    @property
    def total_rows(self) -> int:
        return sum(e.rows for e in self.entities.values())

    @property
    def total_files(self) -> int:
        return sum(e.files for e in self.entities.values())

    @property
    def rejects(self) -> int:
        return sum(e.rejected_files + e.rejected_rows for e in self.entities.values())


class LandingError(Exception):
    """The landing zone as a whole cannot be used (e.g. the raw dir does not exist)."""


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def discover_files(raw_dir: Path, entity: Entity) -> list[Path]:
    """All readable files of an entity, in a stable order (sorted by relative path)."""
    root = raw_dir / entity.path
    if not root.is_dir():
        return []
    files = [
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in FILE_FORMATS and not p.name.startswith((".", "_"))
    ]
    return sorted(files, key=lambda p: p.relative_to(raw_dir).as_posix())


def _create_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"create schema if not exists {SCHEMA}")
    for entity in ENTITIES:
        cols = ", ".join(f"{_quote_ident(c)} varchar" for c in entity.column_names)
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
            rows bigint not null, status varchar not null, reason varchar, loaded_at timestamp not null)"""
    )


def _tabular_source(path: Path, fmt: str) -> tuple[str, str]:
    """FROM-clause source of a CSV or Parquet file plus its row-number expression."""
    lit = _quote_literal(str(path))
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
        f"cast({_quote_ident(by_lower[c])} as varchar)" if c in by_lower else "null"
        for c in entity.column_names
    )
    con.execute(
        f"insert into {SCHEMA}.{entity.name} select {select}, {_quote_literal(rel)}, {row_expr} from {src}"
    )
    return _count(con, entity, rel), None


def _load_jsonl(
    con: duckdb.DuckDBPyConnection, entity: Entity, path: Path, rel: str
) -> tuple[int, str | None]:
    lines = (
        f"select row_number() over () as _row, line, try_cast(line as json) as j "
        f"from read_csv({_quote_literal(str(path))}, columns={{'line': 'VARCHAR'}}, header=false, "
        f"delim='\x1f', quote='', escape='', auto_detect=false)"
    )
    con.execute(f"create or replace temp table _jsonl as {lines}")
    con.execute("alter table _jsonl add column ok boolean")
    con.execute("update _jsonl set ok = coalesce(json_type(j) = 'OBJECT', false)")
    select = ", ".join(f"json_extract_string(j, {_quote_literal('$.' + c)})" for c in entity.column_names)
    con.execute(
        f"insert into {SCHEMA}.{entity.name} select {select}, {_quote_literal(rel)}, _row from _jsonl where ok"
    )
    con.execute(
        f"""insert into {SCHEMA}.load_rejects
            select {_quote_literal(entity.name)}, {_quote_literal(rel)}, _row, null, left(line, 200),
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
    for entity in entities:
        result = EntityResult(entity.name)
        report.entities[entity.name] = result
        for path in discover_files(raw, entity):
            rel = path.relative_to(raw).as_posix()
            fmt = FILE_FORMATS[path.suffix.lower()]
            if fmt == "jsonl":
                rows, reason = _load_jsonl(con, entity, path, rel)
            else:
                rows, reason = _load_tabular(con, entity, path, rel, fmt)
            status = "rejected" if reason else "loaded"
            if reason:
                con.execute(
                    f"insert into {SCHEMA}.load_rejects values (?, ?, null, null, null, ?)",
                    [entity.name, rel, reason],
                )
                log.warning("landing: %s rejected: %s", rel, reason)
                result.rejected_files += 1
            report.files.append(FileResult(entity.name, rel, fmt, rows, status, reason))
            con.execute(
                f"insert into {SCHEMA}.files values (?, ?, ?, ?, ?, ?, now()::timestamp)",
                [entity.name, rel, fmt, rows, status, reason],
            )
            result.files += 1
            result.rows += rows
        row = con.execute(
            f"select count(*) from {SCHEMA}.load_rejects where entity = ? and _row is not null", [entity.name]
        ).fetchone()
        result.rejected_rows = int(row[0]) if row else 0
    orders = report.entities.get("commerce_orders")
    if orders is not None and orders.rows == 0:
        log.warning("landing: no order rows found under %s/commerce/orders; marts will be empty", raw)
    report.seconds = time.monotonic() - started
    return report
