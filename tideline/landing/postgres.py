"""Ship the landing snapshot to a PostgreSQL warehouse (the postgres target, docs/scaling.md).

DuckDB stays the file reader: tideline/landing/loader.py reads the landing files into a DuckDB
workspace (encodings, rejects, the manifest, incremental by file) and remains the one place that
decides what changed. `PostgresMirror` is the loader's mirror: each time the loader changes a
file's rows, the same rows go to the `landing` schema of the PostgreSQL database, so the dbt
models find there exactly the tables (`landing.<entity>`, `load_rejects`, `files`, `loads`) they
read on DuckDB.

The fast path: DuckDB writes the file's rows as CSV to a scratch file, which is streamed to
PostgreSQL's `COPY landing.<table> FROM STDIN` in chunks of `CHUNK_BYTES`; nothing is inserted
row by row. NUL characters, which PostgreSQL text cannot hold, become U+FFFD on the way.

Crash safety: a file's change is one PostgreSQL transaction (its rows out and in, its rejects, its
manifest row and its history row), committed inside the loader's DuckDB transaction of the same
file, just before DuckDB commits. A run killed before the PostgreSQL commit leaves the file as it
was on both sides; killed between the two commits, PostgreSQL has the new version and DuckDB the
old one, and the next run reads the file again and ships it again (idempotently: the rows of the
file, or of an append the rows after the lines read before, are deleted before they are copied).
At the end of every load, `finish` compares the two manifests (`landing.files`): a file whose row
differs, or that only one side has, is shipped whole again or removed (with a history row, so the
incremental models see it changed), so the database converges on the workspace whatever happened
to either (a new database, a lost workspace, a killed run). A load that changed nothing copies
nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from activation.warehouse import literal, quote_identifier
from tideline.landing.contract import ENTITIES

SCHEMA = "landing"
CHUNK_BYTES = 1 << 20  # COPY is fed this many bytes at a time
NUL_REPLACEMENT = 65533  # U+FFFD: PostgreSQL text cannot hold NUL
# the manifest columns that say what a file's rows are: equal on both sides, the rows are too
# (action and checked_at say what the last run did with the file, and are copied over at the end)
CONTENT_COLUMNS = (
    "entity",
    "_file",
    "format",
    "rows",
    "status",
    "reason",
    "encoding",
    "loaded_at",
    "bytes",
    "mtime_ns",
    "records",
    "declared_encoding",
    "boundary_hash",
)


class PostgresUnreachable(ValueError):
    """The PostgreSQL warehouse cannot be connected to (a sentence with libpq's reason)."""


def connect(conninfo: str, what: str = "the PostgreSQL warehouse") -> Any:
    """An autocommit psycopg connection (transactions are explicit), or PostgresUnreachable naming
    libpq's reason. The message never repeats the connection string: it may hold a password."""
    import psycopg

    try:
        return psycopg.connect(conninfo, autocommit=True)
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise PostgresUnreachable(
            f"cannot reach {what} (TIDELINE_PG_HOST, TIDELINE_PG_PORT, TIDELINE_PG_USER, "
            f"TIDELINE_PG_DATABASE, TIDELINE_PG_PASSWORD): {reason}; start the server or fix the "
            "variables, or run with --target duckdb"
        ) from None


def landing_tables(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[str, str]]]:
    """Every table of the workspace's landing schema the mirror keeps: name -> [(column, type)]."""
    names = [e.name for e in ENTITIES] + ["load_rejects", "files", "loads"]
    rows = con.execute(
        """select table_name, column_name, data_type, is_nullable from information_schema.columns
           where table_schema = ? and list_contains(?, table_name)
           order by table_name, ordinal_position""",
        [SCHEMA, names],
    ).fetchall()
    tables: dict[str, list[tuple[str, str]]] = {}
    for table, column, kind, nullable in rows:
        not_null = " not null" if nullable == "NO" else ""
        tables.setdefault(table, []).append((column, _pg_type(kind) + not_null))
    return tables


def _pg_type(duckdb_type: str) -> str:
    kind = duckdb_type.upper()
    if kind in ("VARCHAR", "TEXT"):
        return "text"
    if kind in ("BIGINT", "INTEGER", "HUGEINT"):
        return "bigint"
    if kind.startswith("TIMESTAMP"):
        return "timestamp"
    if kind == "BOOLEAN":
        return "boolean"
    raise ValueError(f"landing column type {duckdb_type} has no PostgreSQL mirror type (add it in _pg_type)")


class PostgresMirror:
    """The loader's mirror into a PostgreSQL `landing` schema (module docstring). `pg` is an
    autocommit psycopg connection; `scratch` a folder for the CSV handed to COPY."""

    def __init__(self, pg: Any, scratch: Path):
        self.pg = pg
        self.scratch = Path(scratch)
        self.tables: dict[str, list[tuple[str, str]]] = {}
        self.shipped_rows = 0  # rows copied: entity rows, rejects, manifest and history rows
        self.shipped: list[str] = []  # files the loader changed (or removed) and this mirror shipped

    # -- the loader's hooks ---------------------------------------------------------------------

    def prepare(self, con: duckdb.DuckDBPyConnection) -> None:
        """The database's landing tables shaped as the workspace's (a table of another shape is
        created again; its files are then shipped again by `finish`)."""
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.tables = landing_tables(con)
        self.pg.execute(f"create schema if not exists {quote_identifier(SCHEMA)}")
        for table, columns in self.tables.items():
            if self._pg_columns(table) != [name for name, _ in columns]:
                with self.pg.transaction():  # dbt views over it go too; the next dbt build makes them again
                    self.pg.execute(f"drop table if exists {self._relation(table)} cascade")
                    body = ", ".join(f"{quote_identifier(name)} {kind}" for name, kind in columns)
                    self.pg.execute(f"create table {self._relation(table)} ({body})")
                    if table not in ("files", "loads", "load_rejects") and self._pg_columns("files"):
                        # its rows are gone: the manifest must not say otherwise
                        self.pg.execute(f"delete from {self._relation('files')} where entity = %s", [table])

    def file_changed(
        self, con: duckdb.DuckDBPyConnection, load_id: str, file: str, entity: str, after_row: int = 0
    ) -> None:
        """Inside the loader's DuckDB transaction of `file`: its rows (an append: those after row
        `after_row`), rejects, manifest row and this load's history row, shipped in one
        PostgreSQL transaction."""
        with self.pg.transaction():
            self._ship(con, file, entity, after_row)
            self._copy(con, "loads", "load_id = ? and _file = ?", [load_id, file])
        self.shipped.append(file)

    def file_removed(self, con: duckdb.DuckDBPyConnection, load_id: str, file: str, entity: str) -> None:
        """Inside the loader's DuckDB transaction removing `file`: the same in PostgreSQL."""
        with self.pg.transaction():
            self._delete(file, entity)
            self._copy(con, "loads", "load_id = ? and _file = ?", [load_id, file])
        self.shipped.append(file)

    def finish(self, con: duckdb.DuckDBPyConnection, load_id: str, at: dt.datetime) -> list[str]:
        """Make the database's landing schema equal the workspace's: ship whole every file whose
        manifest row differs, remove every file the workspace no longer has, then mark the files
        this load left alone as the loader does. Returns the files it shipped or removed."""
        ours = self._manifest_duckdb(con)
        theirs = self._manifest_pg()
        repaired = []
        for file, row in sorted(ours.items()):
            if theirs.get(file) != row:
                entity = row[0]
                with self.pg.transaction():
                    self._ship(con, file, entity, 0)
                    if entity in self.tables:  # what reads the history (incremental models) sees it changed
                        self.pg.execute(
                            f"insert into {self._relation('loads')} values (%s, %s, %s, %s, 'replaced', %s, %s, %s)",
                            [load_id, at, entity, file, row[3], row[3], row[8]],
                        )
                repaired.append(file)
        for file, row in sorted(theirs.items()):
            if file not in ours:
                with self.pg.transaction():
                    self._delete(file, row[0])
                    self.pg.execute(
                        f"insert into {self._relation('loads')} values (%s, %s, %s, %s, 'deleted', 0, 0, null)",
                        [load_id, at, row[0], file],
                    )
                repaired.append(file)
        # what the loader did to the files it left alone (loader.load_landing_zone), here too
        self.pg.execute(
            f"update {self._relation('files')} set action = 'unchanged', checked_at = %s "
            "where checked_at is distinct from %s",
            [at, at],
        )
        return repaired

    # -- the parts ------------------------------------------------------------------------------

    def _ship(self, con: duckdb.DuckDBPyConnection, file: str, entity: str, after_row: int) -> None:
        """Within an open PostgreSQL transaction: the file's rows after `after_row`, its rejects
        and its manifest row, replacing what the database had of them."""
        if entity in self.tables:
            self.pg.execute(
                f"delete from {self._relation(entity)} where _file = %s and _row > %s", [file, after_row]
            )
            self._copy(con, entity, "_file = ? and _row > ?", [file, after_row])
        # an append's new lines: the rejects after the lines read before; else all of the file's
        self.pg.execute(
            f"delete from {self._relation('load_rejects')} where _file = %s and (%s = 0 or _row > %s)",
            [file, after_row, after_row],
        )
        self._copy(con, "load_rejects", "_file = ? and (? = 0 or _row > ?)", [file, after_row, after_row])
        self.pg.execute(f"delete from {self._relation('files')} where _file = %s", [file])
        self._copy(con, "files", "_file = ?", [file])

    def _delete(self, file: str, entity: str) -> None:
        if entity in self.tables:
            self.pg.execute(f"delete from {self._relation(entity)} where _file = %s", [file])
        for table in ("load_rejects", "files"):
            self.pg.execute(f"delete from {self._relation(table)} where _file = %s", [file])

    def _copy(self, con: duckdb.DuckDBPyConnection, table: str, where: str, params: Sequence[Any]) -> int:
        """The workspace's rows of `table` matching `where` (DuckDB SQL, bound `params`) into the
        same table in PostgreSQL with COPY, fed in CHUNK_BYTES chunks of CSV written by DuckDB."""
        columns = self.tables[table]
        select = ", ".join(
            f"replace({quote_identifier(name)}, chr(0), chr({NUL_REPLACEMENT}))"
            if kind.startswith("text")
            else quote_identifier(name)
            for name, kind in columns
        )
        path = self.scratch / "ship.csv"
        relation = self._relation(table)
        copied = con.execute(
            f"copy (select {select} from {relation} where {where}) to {literal(str(path))} (format csv, header false)",
            list(params),
        ).fetchone()
        rows = int(copied[0]) if copied else 0
        if rows:
            names = ", ".join(quote_identifier(name) for name, _ in columns)
            with (
                self.pg.cursor() as cur,
                cur.copy(f"copy {relation} ({names}) from stdin (format csv)") as copy,
            ):
                for chunk in _chunks(path):
                    copy.write(chunk)
            self.shipped_rows += rows
        path.unlink(missing_ok=True)
        return rows

    def _manifest_duckdb(self, con: duckdb.DuckDBPyConnection) -> dict[str, tuple]:
        columns = ", ".join(quote_identifier(c) for c in CONTENT_COLUMNS)
        rows = con.execute(f"select {columns} from {self._relation('files')}").fetchall()
        return {row[1]: _comparable(row) for row in rows}

    def _manifest_pg(self) -> dict[str, tuple]:
        columns = ", ".join(quote_identifier(c) for c in CONTENT_COLUMNS)
        rows = self.pg.execute(f"select {columns} from {self._relation('files')}").fetchall()
        return {row[1]: _comparable(row) for row in rows}

    def _pg_columns(self, table: str) -> list[str]:
        rows = self.pg.execute(
            """select column_name from information_schema.columns
               where table_schema = %s and table_name = %s order by ordinal_position""",
            [SCHEMA, table],
        ).fetchall()
        return [r[0] for r in rows]

    @staticmethod
    def _relation(table: str) -> str:
        return f"{quote_identifier(SCHEMA)}.{quote_identifier(table)}"


def _comparable(row: Sequence[Any]) -> tuple:
    """A manifest row with the values both engines give alike (ints as int, text NUL-free)."""
    return tuple(
        value.replace("\x00", chr(NUL_REPLACEMENT)) if isinstance(value, str) else value for value in row
    )


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            yield chunk


@contextmanager
def mirror_to(conninfo: str, scratch: Path) -> Iterator[PostgresMirror]:
    """A PostgresMirror on a new connection to `conninfo`, closed afterwards."""
    pg = connect(conninfo)
    try:
        yield PostgresMirror(pg, scratch)
    finally:
        pg.close()
