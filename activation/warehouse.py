"""The warehouse connection's small helpers, shared by activation, alerts and the summary.

- Catalogue questions: `table_exists`, `columns_of` (models and ledgers may not be built yet).
- SQL from config or data. Values are bound (`con.execute(sql, params)`; `execute` binds a dict
  of named `$parameters`, passing only those the statement uses). Identifiers go through
  `quote_identifier` / `quote_relation`, the one quoting helper, which rejects what it cannot
  quote. `literal` is only for the few places DuckDB cannot bind (a CREATE VIEW body).
- DuckDB's resources while a sync runs (`DuckDBLimits`, `limited`): memory limit, threads and
  the folder it spills to, from TIDELINE_DUCKDB_MEMORY_LIMIT, TIDELINE_DUCKDB_THREADS and
  TIDELINE_DUCKDB_TEMP_DIR; running out of memory becomes an error that names the setting to raise.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import duckdb

log = logging.getLogger(__name__)

MEMORY_LIMIT_ENV = "TIDELINE_DUCKDB_MEMORY_LIMIT"
THREADS_ENV = "TIDELINE_DUCKDB_THREADS"
TEMP_DIR_ENV = "TIDELINE_DUCKDB_TEMP_DIR"
# A sync plans, applies policies and streams its send list within this; beyond it DuckDB spills
# to the temp directory. Measured: a 1,000,000-customer sync with a 5,000,000-event ledger plans
# in it (tests/integration/test_policies_scale.py; docs/activation.md).
DEFAULT_MEMORY_LIMIT = "128MB"
DEFAULT_THREADS = 2

_MEMORY = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)\s*$", re.IGNORECASE)
_PARAMETER = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_MAX_IDENTIFIER = 255


class UnsafeIdentifier(ValueError):
    """A name that cannot be used as a SQL identifier (empty, too long or with control characters)."""


class WarehouseMemoryError(RuntimeError):
    """DuckDB ran out of memory under the configured limit; the message says which setting to raise."""


# --- catalogue --------------------------------------------------------------------------------------


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    """Whether `schema.table` (a table or a view) exists: models and ledgers may not be built yet."""
    row = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(row and row[0])


def columns_of(con: duckdb.DuckDBPyConnection, relation: str) -> set[str]:
    """The column names of `schema.table` (lower-case); empty when it does not exist."""
    schema, _, table = relation.rpartition(".")
    rows = con.execute(
        "select lower(column_name) from information_schema.columns where table_schema = ? and table_name = ?",
        [schema or "main", table],
    ).fetchall()
    return {r[0] for r in rows}


# --- SQL from config and data -------------------------------------------------------------------------


def _check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise UnsafeIdentifier(f"{what} must be a non-empty string, got {name!r}")
    if len(name) > _MAX_IDENTIFIER:
        raise UnsafeIdentifier(f"{what} is longer than {_MAX_IDENTIFIER} characters: {name[:40]!r}...")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise UnsafeIdentifier(f"{what} contains a control character: {name!r}")
    return name


def quote_identifier(name: str) -> str:
    """`name` as a double-quoted SQL identifier (a column, table or schema name). Any printable
    text can be quoted; an empty name, a control character or more than 255 characters raises
    UnsafeIdentifier."""
    return '"' + _check_name(name, "identifier").replace('"', '""') + '"'


def quote_relation(relation: str) -> str:
    """`schema.table` (or `table`) with each part quoted. The dot separates the parts, so a part
    cannot contain one (dbt relation names do not)."""
    parts = _check_name(relation, "relation").split(".")
    if len(parts) > 3 or not all(parts):
        raise UnsafeIdentifier(f"relation {relation!r} is not [database.]schema.table")
    return ".".join(quote_identifier(p) for p in parts)


def literal(value: str) -> str:
    """A single-quoted SQL string, only for statements DuckDB cannot bind parameters in (a
    CREATE VIEW body); everything else binds. NUL cannot be quoted and raises UnsafeIdentifier."""
    if not isinstance(value, str) or "\x00" in value:
        raise UnsafeIdentifier(f"cannot quote {value!r} as a SQL string")
    return "'" + value.replace("'", "''") + "'"


def execute(
    con: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, Any] | None = None
) -> duckdb.DuckDBPyConnection:
    """Run `sql` binding the named `$parameters` it uses from `params` (DuckDB rejects unused
    ones, so a shared dict of a query family's values can be passed to each of its statements)."""
    used = set(_PARAMETER.findall(sql))
    missing = used - set(params or {})
    if missing:
        raise KeyError(f"SQL parameter(s) {', '.join(sorted(missing))} not given")
    return con.execute(sql, {k: v for k, v in (params or {}).items() if k in used})


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """The block as one transaction: committed when it ends, rolled back when anything is raised
    in it (a KeyboardInterrupt or a test's simulated crash included), which is then raised again."""
    con.execute("begin")
    try:
        yield con
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


# --- DuckDB's resources while a sync runs ---------------------------------------------------------------


@dataclass(frozen=True)
class DuckDBLimits:
    """memory_limit (DuckDB size, e.g. 256MB or 1GB), threads, and the folder DuckDB spills to
    ('' = DuckDB's default, `<warehouse>.tmp` next to the warehouse file)."""

    memory_limit: str = DEFAULT_MEMORY_LIMIT
    threads: int = DEFAULT_THREADS
    temp_directory: str = ""

    @classmethod
    def resolve(
        cls,
        memory_limit: str = "",
        threads: int = 0,
        temp_directory: str = "",
        env: Mapping[str, str] | None = None,
    ) -> DuckDBLimits:
        """Explicit values (e.g. ActivationConfigResource) first, then the environment, then the defaults;
        a bad value is a ValueError naming the setting."""
        env = os.environ if env is None else env
        memory = (memory_limit or env.get(MEMORY_LIMIT_ENV, "") or DEFAULT_MEMORY_LIMIT).strip()
        if not _MEMORY.match(memory):
            raise ValueError(f"{MEMORY_LIMIT_ENV} / memory_limit {memory!r} is not a size like 256MB or 2GB")
        raw_threads = str(threads or env.get(THREADS_ENV, "") or DEFAULT_THREADS).strip()
        if not raw_threads.isdigit() or int(raw_threads) < 1:
            raise ValueError(f"{THREADS_ENV} / threads must be a whole number >= 1, got {raw_threads!r}")
        temp = (temp_directory or env.get(TEMP_DIR_ENV, "")).strip()
        return cls(memory.replace(" ", ""), int(raw_threads), temp)


_SETTINGS = ("memory_limit", "threads", "temp_directory")


@contextmanager
def limited(con: duckdb.DuckDBPyConnection, limits: DuckDBLimits, what: str) -> Iterator[None]:
    """Run the block under `limits` (DuckDB settings are per database, shared by every connection
    to the file in this process, so the previous values are restored afterwards). An
    OutOfMemoryException becomes a WarehouseMemoryError naming `what` ran out and which setting
    to raise."""
    previous = {name: con.execute("select current_setting(?)", [name]).fetchone()[0] for name in _SETTINGS}
    if limits.temp_directory and limits.temp_directory != previous["temp_directory"]:
        os.makedirs(limits.temp_directory, exist_ok=True)
        try:
            con.execute("set temp_directory = ?", [limits.temp_directory])
        except duckdb.NotImplementedException:  # this process's database spilled elsewhere already
            log.warning(
                "DuckDB keeps its temp directory %s until the process ends", previous["temp_directory"]
            )
    con.execute("set memory_limit = ?", [limits.memory_limit])
    con.execute("set threads = ?", [limits.threads])
    try:
        yield
    except duckdb.OutOfMemoryException as exc:
        raise WarehouseMemoryError(
            f"{what} ran out of DuckDB memory under memory_limit {limits.memory_limit} with "
            f"{limits.threads} thread(s): raise {MEMORY_LIMIT_ENV} (or ActivationConfigResource.memory_limit), "
            f"e.g. to {_doubled(limits.memory_limit)}, or lower {THREADS_ENV}; DuckDB spills to "
            f"{limits.temp_directory or previous['temp_directory'] or 'its temp directory'} "
            f"({TEMP_DIR_ENV}), which needs free disk. DuckDB said: {str(exc).splitlines()[0]}"
        ) from exc
    finally:
        for name in ("memory_limit", "threads"):
            _restore(con, name, previous[name])


def _restore(con: duckdb.DuckDBPyConnection, name: str, value: Any) -> None:
    """Back to `value`, as shown before. SET first: in DuckDB 1.5 `RESET memory_limit` changes what
    current_setting shows but not the buffer pool's limit (duckdb/duckdb#22203), so without it
    everything after a sync in the same process ran under the sync's limit (the journey benchmark's
    ticks failed at 128MB). Then RESET when `value` was DuckDB's default (a size is shown rounded,
    18.8 GiB: the setting shows the exact default again, the pool within that rounding of it), else
    SET again."""
    con.execute(f"set {name} = ?", [value])  # name: one of this module's _SETTINGS
    con.execute(f"reset {name}")
    if con.execute("select current_setting(?)", [name]).fetchone()[0] != value:
        con.execute(f"set {name} = ?", [value])


def _doubled(size: str) -> str:
    match = re.match(r"^(\d+(?:\.\d+)?)(.*)$", size)
    if not match:
        return "twice that"
    number = float(match.group(1)) * 2
    return f"{number:g}{match.group(2)}"
