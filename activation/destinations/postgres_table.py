"""PostgreSQL table destination (kind "postgres"): upsert segment members into a table, delete on mirror.

Config:

    kind: postgres
    dsn_env: CRM_PG_DSN            # env var holding a libpq connection string (secrets never in config)
    # ... or, instead of dsn_env:
    host: db.internal
    port: 5432                     # default 5432
    dbname: crm
    user: tideline
    password_env: CRM_PG_PASSWORD  # optional (trust/peer auth, ~/.pgpass)
    schema: public                 # default public
    table: audience_members        # required
    key_column: customer_id        # default customer_id; needs a unique index (primary key)
    columns:                       # optional field -> SQL type; other fields seen are text
      email: varchar(320)
      ltv: numeric(12, 2)
    create_table: true             # default true (see below)
    max_batch_size: 1000           # default 1000
    connect_timeout: 10            # seconds, default 10
    retry_attempts: 5              # RetryPolicy for connection errors (defaults from activation.retry)
    retry_base_seconds: 0.5
    retry_max_seconds: 30

With create_table (the default) the table is created when missing as

    key_column <columns[key_column] or text> primary key, <configured columns>, <fields seen, text>,
    _tideline_synced_at timestamptz, _tideline_idempotency_key text

and fields seen later are added with `alter table ... add column if not exists` (their `columns`
type, else text). Without it the table must exist; a field without a column fails its record
(not retryable). The `_tideline_*` columns are filled when the table has them.

send_batch applies the whole batch in ONE transaction: the records are staged with COPY into a
temp table (with the target's column types, so values are parsed as those types), then merged with
`insert ... on conflict (key) do update` ("upsert" and "send") and `delete ... using` ("delete").
Within a batch the last record for a key wins. Rows whose values are unchanged are not rewritten,
so replaying a batch leaves the table exactly as it was (even `_tideline_synced_at`).

A record that breaks a constraint or a type (e.g. too long for a varchar(5)) must not fail the
others: when the merge fails, the batch is redone row by row, each row in a savepoint, and only
the bad rows fail (not retryable; the error is PostgreSQL's message without values: details are
dropped and quoted values in data errors are masked). Connection errors (and deadlocks,
serialisation failures, shutdowns) are retried with the RetryPolicy on a new connection; what
still fails is returned failed and retryable. Bad credentials, a missing database or (without
create_table) a missing table raise PostgresDestinationError: the whole destination is unusable.

Thread-safe: one connection per thread (autocommit, explicit transactions), all closed by close().
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
import psycopg.errors
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb

from activation.destinations.base import (
    ConfigError,
    DestinationDefaults,
    OutboundRecord,
    RecordResult,
    SyncContext,
)
from activation.retry import RetryPolicy

SYNCED_AT = "_tideline_synced_at"
IDEMPOTENCY = "_tideline_idempotency_key"
RESERVED_PREFIX = "_tideline_"
_STAGE = "_tideline_stage"
_GROUP = "_tideline_grp"
_DELETE_GROUP = -1
_MAX_IDENTIFIER_BYTES = 63

# a plain SQL type name: words, optional (n) or (p, s), optional time zone, optional []s
_TYPE = re.compile(
    r"^[a-z_][a-z0-9_$.]*( [a-z_][a-z0-9_$]*)*"
    r"(\s*\(\s*\d+\s*(,\s*\d+\s*)?\))?( (with|without) time zone)?(\s*\[\d*\])*$",
    re.IGNORECASE,
)
# types without an equality operator: compared as text when deciding whether a row changed
_NO_EQUALITY = re.compile(r"^(json|xml|point|line|lseg|box|path|polygon|circle)\b", re.IGNORECASE)
# connect-time failures that no retry will fix
_UNUSABLE = re.compile(
    r"authentication failed|no pg_hba\.conf entry|role \".*\" does not exist|"
    r"database \".*\" does not exist|permission denied|SSL is required|certificate",
    re.IGNORECASE,
)
_TRANSIENT = (psycopg.OperationalError, psycopg.InterfaceError)


class _SchemaChanged(Exception):
    """The cached columns no longer match the table."""


class PostgresDestinationError(RuntimeError):
    """The destination as a whole is unusable (credentials, database, table): the engine retries later."""


def describe_error(exc: BaseException) -> str:
    """An error text without personal data: PostgreSQL's primary message, never its detail."""
    state = getattr(exc, "sqlstate", None)
    diag = getattr(exc, "diag", None)
    message = getattr(diag, "message_primary", None) if diag is not None else None
    if not message:
        if not isinstance(exc, psycopg.Error):
            return type(exc).__name__  # a Python error while adapting a value may quote the value
        message = (str(exc).strip().splitlines() or [""])[0]
    if state and state.startswith("22"):  # data exception: messages quote the offending value
        message = re.sub(r'"[^"]*"', '"…"', message)
    return f"{type(exc).__name__} ({state}): {message}" if state else f"{type(exc).__name__}: {message}"


def _ident(name: str, *, with_params: bool = False) -> sql.Identifier:
    """A quoted identifier; psycopg reads % in a query's text as a placeholder when it gets parameters."""
    return sql.Identifier(name.replace("%", "%%") if with_params else name)


def _identifier_problem(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return "must be a non-empty string"
    if "\x00" in value:
        return "must not contain NUL"
    if len(value.encode()) > _MAX_IDENTIFIER_BYTES:
        return f"is longer than {_MAX_IDENTIFIER_BYTES} bytes (PostgreSQL would truncate it)"
    return None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class PostgresTableDestination(DestinationDefaults):
    kind = "postgres"

    def __init__(
        self,
        name: str,
        config: Mapping[str, Any],
        *,
        retry: RetryPolicy | None = None,
        env: Mapping[str, str] | None = None,
    ):
        self.name = name
        self._env = os.environ if env is None else env  # where dsn_env / password_env are looked up
        cfg = dict(config or {})
        self._problems: list[tuple[str, str]] = []

        def problem(field: str, text: str) -> None:
            self._problems.append((field, text))

        self.schema = cfg.get("schema", "public")
        self.table = cfg.get("table")
        self.key_column = cfg.get("key_column", "customer_id")
        for field in ("schema", "table", "key_column"):
            issue = _identifier_problem(getattr(self, field))
            if issue:
                problem(field, "is required" if getattr(self, field) is None else issue)

        columns = cfg.get("columns") or {}
        self.columns: dict[str, str] = {}
        if not isinstance(columns, Mapping):
            problem("columns", "must be a mapping of field name to SQL type")
        else:
            for col, typ in columns.items():
                issue = _identifier_problem(col)
                if issue:
                    problem(f"columns.{col}", f"name {issue}")
                elif col.startswith(RESERVED_PREFIX):
                    problem(f"columns.{col}", f"names starting with {RESERVED_PREFIX} are reserved")
                elif not isinstance(typ, str) or not _TYPE.match(typ.strip()):
                    problem(
                        f"columns.{col}",
                        "is not a plain SQL type name such as text, varchar(5), numeric(12, 2)",
                    )
                else:
                    self.columns[col] = typ.strip()

        self.create_table = cfg.get("create_table", True)
        if not isinstance(self.create_table, bool):
            problem("create_table", "must be true or false")

        self.max_batch_size = _as_int(cfg.get("max_batch_size", 1000)) or 0
        if self.max_batch_size < 1:
            problem("max_batch_size", "must be a positive integer")
            self.max_batch_size = 1000

        self.connect_timeout = _as_float(cfg.get("connect_timeout", 10)) or 0.0
        if self.connect_timeout <= 0:
            problem("connect_timeout", "must be a positive number of seconds")
            self.connect_timeout = 10.0

        default = retry or RetryPolicy()
        attempts = _as_int(cfg.get("retry_attempts", default.attempts))
        base = _as_float(cfg.get("retry_base_seconds", default.base_seconds))
        ceiling = _as_float(cfg.get("retry_max_seconds", default.max_seconds))
        if attempts is None or attempts < 1:
            problem("retry_attempts", "must be a positive integer")
            attempts = default.attempts
        if base is None or base < 0:
            problem("retry_base_seconds", "must be a number >= 0")
            base = default.base_seconds
        if ceiling is None or ceiling < 0:
            problem("retry_max_seconds", "must be a number >= 0")
            ceiling = default.max_seconds
        self.retry = RetryPolicy(
            attempts=attempts,
            base_seconds=base,
            max_seconds=ceiling,
            max_retry_after_seconds=default.max_retry_after_seconds,
        )

        # connection: dsn_env, or host/port/dbname/user (+ password_env); secrets only from env vars
        self.dsn_env = cfg.get("dsn_env")
        self.host, self.dbname, self.user = cfg.get("host"), cfg.get("dbname"), cfg.get("user")
        self.port = _as_int(cfg.get("port", 5432))
        self.password_env = cfg.get("password_env")
        if self.dsn_env and self.host:
            problem("dsn_env", "give either dsn_env or host/port/dbname/user, not both")
        elif self.dsn_env:
            if not isinstance(self.dsn_env, str):
                problem("dsn_env", "must name an environment variable")
        elif self.host:
            for field in ("host", "dbname", "user"):
                if not isinstance(getattr(self, field), str) or not getattr(self, field):
                    problem(field, "is required with host (or use dsn_env)")
            if self.port is None or not 0 < self.port < 65536:
                problem("port", "must be a port number")
            if self.password_env is not None and not isinstance(self.password_env, str):
                problem("password_env", "must name an environment variable")
        else:
            problem("dsn_env", "is required (or host, port, dbname, user and password_env)")

        self._validated = False
        self._local = threading.local()
        self._connections: set[psycopg.Connection] = set()
        self._connections_lock = threading.Lock()
        self._table_lock = threading.Lock()
        self._table_columns: dict[str, str] | None = None  # column -> type, from the catalog

    @classmethod
    def from_config(
        cls, name: str, config: Mapping[str, Any], env: Mapping[str, str] | None = None
    ) -> PostgresTableDestination:
        """Build from a destination's config dict; secrets are the values of the environment variables
        it names, in `env` (the environment the config was loaded with)."""
        return cls(name, config, env=env)

    # ------------------------------------------------------------------ config

    def validate(self) -> None:
        """Raise ConfigError naming the destination and the field; checks config only, no network."""
        problems = self._problems + self._secret_problems()
        if problems:
            field, text = problems[0]
            raise ConfigError(f"destination {self.name}: {field} {text}")
        self._validated = True

    def _secret_problems(self) -> list[tuple[str, str]]:
        """The env vars the config names, read now (never their values in a message)."""
        if self._problems:
            return []
        if self.dsn_env:
            value = self._env.get(self.dsn_env)
            if not value:
                return [("dsn_env", f"environment variable {self.dsn_env} is not set")]
            try:
                conninfo_to_dict(value)
            except psycopg.Error:
                return [
                    ("dsn_env", f"environment variable {self.dsn_env} is not a valid libpq connection string")
                ]
        elif self.password_env and not self._env.get(self.password_env):
            return [("password_env", f"environment variable {self.password_env} is not set")]
        return []

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.table}"

    def _table_sql(self, *, with_params: bool = False) -> sql.Composed:
        return sql.SQL("{}.{}").format(
            _ident(self.schema, with_params=with_params), _ident(self.table, with_params=with_params)
        )

    # ------------------------------------------------------------------ connections

    def _conninfo(self) -> str:
        if self.dsn_env:
            base, params = self._env.get(self.dsn_env, ""), {}
        else:
            base = ""
            params = {"host": self.host, "port": self.port, "dbname": self.dbname, "user": self.user}
            if self.password_env:
                params["password"] = self._env.get(self.password_env, "")
        given = conninfo_to_dict(base) if base else {}
        if "connect_timeout" not in given:
            params["connect_timeout"] = max(1, round(self.connect_timeout))
        if "application_name" not in given:
            params["application_name"] = "tideline-activation"
        return make_conninfo(base, **params)

    def _connection(self) -> psycopg.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        self._discard(conn)
        try:
            conn = psycopg.connect(self._conninfo(), autocommit=True)
        except psycopg.OperationalError as exc:
            if _UNUSABLE.search(str(exc)):
                raise PostgresDestinationError(
                    f"destination {self.name}: cannot connect: {describe_error(exc)}"
                ) from None
            raise
        self._local.conn = conn
        with self._connections_lock:
            self._connections.add(conn)
        return conn

    def _discard(self, conn: psycopg.Connection | None) -> None:
        if conn is None:
            return
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._connections_lock:
            self._connections.discard(conn)
        with contextlib.suppress(Exception):  # closing a dead connection
            conn.close()

    def close(self) -> None:
        with self._connections_lock:
            conns, self._connections = list(self._connections), set()
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()
        self._local = threading.local()

    # ------------------------------------------------------------------ the table

    def _introspect(self, conn: psycopg.Connection) -> dict[str, str] | None:
        rows = conn.execute(
            """
            select a.attname, format_type(a.atttypid, a.atttypmod)
            from pg_attribute a
            join pg_class c on c.oid = a.attrelid
            join pg_namespace n on n.oid = c.relnamespace
            where n.nspname = %s and c.relname = %s and c.relkind in ('r', 'p')
              and a.attnum > 0 and not a.attisdropped
            order by a.attnum
            """,
            [self.schema, self.table],
        ).fetchall()
        return {name: typ for name, typ in rows} or None

    def _key_is_unique(self, conn: psycopg.Connection) -> bool:
        row = conn.execute(
            """
            select exists (
              select 1
              from pg_index i
              join pg_class c on c.oid = i.indrelid
              join pg_namespace n on n.oid = c.relnamespace
              join pg_attribute a on a.attrelid = c.oid and a.attname = %s
              where n.nspname = %s and c.relname = %s and i.indisunique and i.indpred is null
                and i.indnkeyatts = 1 and i.indkey[0] = a.attnum
            )
            """,
            [self.key_column, self.schema, self.table],
        ).fetchone()
        return bool(row and row[0])

    def _ensure_table(self, conn: psycopg.Connection, fields: set[str]) -> dict[str, str]:
        """The target's columns, creating the table or adding columns first when configured to."""
        cached = self._table_columns
        if cached is not None and fields <= cached.keys():
            return cached
        with self._table_lock:
            cached = self._table_columns
            if cached is not None and fields <= cached.keys():
                return cached
            try:
                with conn.transaction():
                    lock_id = int.from_bytes(
                        hashlib.sha256(f"tideline:{self.qualified_name}".encode()).digest()[:8],
                        "big",
                        signed=True,
                    )
                    conn.execute("select pg_advisory_xact_lock(%s)", [lock_id])
                    columns = self._introspect(conn)
                    if columns is None:
                        if not self.create_table:
                            raise PostgresDestinationError(
                                f"destination {self.name}: table {self.qualified_name} does not exist "
                                "(create_table is false)"
                            )
                        self._create(conn, fields)
                        columns = self._introspect(conn) or {}
                    if self.key_column not in columns:
                        raise PostgresDestinationError(
                            f"destination {self.name}: table {self.qualified_name} has no key column {self.key_column}"
                        )
                    if not self._key_is_unique(conn):
                        raise PostgresDestinationError(
                            f"destination {self.name}: key column {self.key_column} of {self.qualified_name} "
                            "needs a unique index (primary key) for upserts"
                        )
                    missing = sorted(f for f in fields if f not in columns)
                    if missing and self.create_table:
                        for field in missing:
                            conn.execute(
                                sql.SQL("alter table {} add column if not exists {} {}").format(
                                    self._table_sql(),
                                    sql.Identifier(field),
                                    sql.SQL(self.columns.get(field, "text")),
                                )
                            )
                        columns = self._introspect(conn) or {}
            except _TRANSIENT:
                raise
            except psycopg.Error as exc:  # e.g. no privilege to create the table
                raise PostgresDestinationError(
                    f"destination {self.name}: cannot prepare table {self.qualified_name}: {describe_error(exc)}"
                ) from None
            self._table_columns = columns
            return columns

    def _create(self, conn: psycopg.Connection, fields: set[str]) -> None:
        exists = conn.execute(
            "select to_regnamespace(%s) is not null", [sql.Identifier(self.schema).as_string(conn)]
        )
        if not exists.fetchone()[0]:
            conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(self.schema)))
        definitions = [
            sql.SQL("{} {} primary key").format(
                sql.Identifier(self.key_column), sql.SQL(self.columns.get(self.key_column, "text"))
            )
        ]
        names = [c for c in self.columns if c != self.key_column]
        names += sorted(f for f in fields if f not in self.columns and f != self.key_column)
        for col in names:
            definitions.append(
                sql.SQL("{} {}").format(sql.Identifier(col), sql.SQL(self.columns.get(col, "text")))
            )
        definitions.append(sql.SQL("{} timestamptz").format(sql.Identifier(SYNCED_AT)))
        definitions.append(sql.SQL("{} text").format(sql.Identifier(IDEMPOTENCY)))
        conn.execute(
            sql.SQL("create table if not exists {} ({})").format(
                self._table_sql(), sql.SQL(", ").join(definitions)
            )
        )

    # ------------------------------------------------------------------ sending

    def send_batch(self, records: Sequence[OutboundRecord], context: SyncContext) -> list[RecordResult]:
        if not self._validated:
            self.validate()
        results: list[RecordResult | None] = [None] * len(records)
        work: list[tuple[int, OutboundRecord, Any, dict[str, Any]]] = []
        for i, record in enumerate(records):
            if record.action not in ("upsert", "send", "delete"):
                results[i] = _failed(record, f"unsupported action {record.action!r}")
                continue
            fields = dict(record.fields or {})
            key = fields.pop(self.key_column, None)
            if key is None:
                key = record.customer_id
            if key is None or key == "":
                results[i] = _failed(record, f"no value for key column {self.key_column}")
                continue
            if record.action == "delete":
                fields = {}
            bad = next(
                (
                    f"field {f!r}: "
                    + (_identifier_problem(f) or f"names starting with {RESERVED_PREFIX} are reserved")
                    for f in fields
                    if _identifier_problem(f) or f.startswith(RESERVED_PREFIX)
                ),
                None,
            )
            if bad:
                results[i] = _failed(record, bad)
                continue
            work.append((i, record, key, fields))
        if work:
            for i, result in self._apply_with_retry(work).items():
                results[i] = result
        return [r for r in results if r is not None]

    def _apply_with_retry(self, work: list) -> dict[int, RecordResult]:
        needed = {f for _, _, _, fields in work for f in fields}
        last: BaseException | None = None
        refreshed = False
        for attempt in range(1, self.retry.attempts + 1):
            conn = None
            try:
                conn = self._connection()
                columns = self._ensure_table(conn, needed)
                try:
                    return self._apply(conn, work, columns, schema_may_be_stale=not refreshed)
                except _SchemaChanged:  # the table was dropped or altered under us: look again, once
                    refreshed = True
                    self._table_columns = None
                    columns = self._ensure_table(conn, needed)
                    return self._apply(conn, work, columns, schema_may_be_stale=False)
            except _TRANSIENT as exc:
                last = exc
                if conn is not None and (
                    conn.closed or conn.broken or isinstance(exc, psycopg.InterfaceError)
                ):
                    self._discard(conn)
                if attempt < self.retry.attempts:
                    self.retry.sleep(attempt)
        error = f"after {self.retry.attempts} attempts: {describe_error(last) if last else 'unknown error'}"
        return {i: _failed(record, error, retryable=True) for i, record, _, _ in work}

    def _apply(
        self,
        conn: psycopg.Connection,
        work: list,
        columns: dict[str, str],
        *,
        schema_may_be_stale: bool = False,
    ) -> dict[int, RecordResult]:
        out: dict[int, RecordResult] = {}
        good = []
        for item in work:
            i, record, _, fields = item
            unknown = sorted(f for f in fields if f not in columns)
            if unknown:
                out[i] = _failed(record, f"field {unknown[0]!r} has no column in {self.qualified_name}")
            else:
                good.append(item)
        if not good:
            return out
        try:
            with conn.transaction():
                self._merge(conn, good, columns)
        except _TRANSIENT:
            raise
        except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn):
            if schema_may_be_stale:
                raise _SchemaChanged from None
        except (psycopg.Error, TypeError, ValueError):
            pass
        else:
            for i, record, key, _ in good:
                out[i] = RecordResult(record.idempotency_key, "sent", remote_id=str(key))
            return out
        try:
            out.update(self._row_by_row(conn, good, columns))
        except _TRANSIENT:
            raise
        except psycopg.Error as exc:  # e.g. a deferred constraint failing at commit
            out.update({i: _failed(record, describe_error(exc)) for i, record, _, _ in good})
        return out

    def _value(self, value: Any, column_type: str) -> Any:
        if isinstance(value, bool) and column_type != "boolean":  # COPY would write t/f into a text column
            return "true" if value else "false"
        if isinstance(value, dict) or (isinstance(value, list | tuple) and not column_type.endswith("]")):
            return Jsonb(value)
        return value

    def _merge(self, conn: psycopg.Connection, good: list, columns: dict[str, str]) -> None:
        """The fast path: COPY the batch into a temp table like the target, then upsert and delete from it."""
        latest: dict[Any, tuple[OutboundRecord, dict[str, Any]]] = {}
        for _, record, key, fields in good:
            latest.pop(key, None)
            latest[key] = (record, fields)
        groups: dict[tuple[str, ...], int] = {}
        rows = []
        for key, (record, fields) in latest.items():
            if record.action == "delete":
                rows.append((key, None, {}, _DELETE_GROUP))
            else:
                group = groups.setdefault(tuple(sorted(fields)), len(groups))
                rows.append((key, record.idempotency_key, fields, group))
        union = sorted({f for names in groups for f in names})
        has_idem = IDEMPOTENCY in columns
        copy_columns = [self.key_column, *union, *([IDEMPOTENCY] if has_idem else []), _GROUP]

        stage = sql.Identifier(_STAGE)
        target = self._table_sql()
        key = sql.Identifier(self.key_column)
        # the stage has the target's column types (format_type from the catalog), without its
        # constraints: a delete or a partial upsert must not trip over a not-null column
        definitions = [
            sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(columns[c])) for c in copy_columns[:-1]
        ]
        definitions.append(sql.SQL("{} integer").format(sql.Identifier(_GROUP)))
        conn.execute(
            sql.SQL("create temp table {} ({}) on commit drop").format(stage, sql.SQL(", ").join(definitions))
        )
        with conn.cursor() as cur:
            copy_sql = sql.SQL("copy {} ({}) from stdin").format(
                stage, sql.SQL(", ").join(map(sql.Identifier, copy_columns))
            )
            with cur.copy(copy_sql) as copy:
                for key_value, idem, fields, group in rows:
                    row = [key_value]
                    row += [self._value(fields.get(f), columns[f]) for f in union]
                    if has_idem:
                        row.append(idem)
                    row.append(group)
                    copy.write_row(row)

        for names, group in groups.items():
            conn.execute(self._upsert_sql(list(names), columns, source=stage, group=group))
        if any(group == _DELETE_GROUP for *_, group in rows):
            conn.execute(
                sql.SQL("delete from {} as t using {} as s where s.{} = {} and t.{} = s.{}").format(
                    target, stage, sql.Identifier(_GROUP), sql.Literal(_DELETE_GROUP), key, key
                )
            )

    def _upsert_sql(
        self, fields: list[str], columns: dict[str, str], *, source: sql.Identifier | None, group: int = 0
    ) -> sql.Composed:
        """insert ... on conflict (key) do update, from the stage (source) or from one row of parameters."""
        with_params = source is None
        ident = functools.partial(_ident, with_params=with_params)
        has_idem, has_synced = IDEMPOTENCY in columns, SYNCED_AT in columns
        compared = [*fields, *([IDEMPOTENCY] if has_idem else [])]
        inserted = [self.key_column, *compared, *([SYNCED_AT] if has_synced else [])]
        if source is not None:
            values = [ident(c) for c in [self.key_column, *compared]]
            if has_synced:
                values.append(sql.SQL("now()"))
            body = sql.SQL("select {} from {} where {} = {} order by {}").format(
                sql.SQL(", ").join(values), source, ident(_GROUP), sql.Literal(group), ident(self.key_column)
            )
        else:
            values = [sql.Placeholder()] * (1 + len(compared))
            if has_synced:
                values.append(sql.SQL("now()"))
            body = sql.SQL("values ({})").format(sql.SQL(", ").join(values))
        query = sql.SQL("insert into {} as t ({}) {} on conflict ({}) ").format(
            self._table_sql(with_params=with_params),
            sql.SQL(", ").join(map(ident, inserted)),
            body,
            ident(self.key_column),
        )
        updated = [c for c in inserted if c != self.key_column]
        if not updated:
            return query + sql.SQL("do nothing")

        def side(alias: str, col: str) -> sql.Composable:
            ref = sql.SQL("{}.{}").format(ident(alias), ident(col))
            return ref + sql.SQL("::text") if _NO_EQUALITY.match(columns.get(col, "")) else ref

        assignments = sql.SQL(", ").join(
            sql.SQL("{} = excluded.{}").format(ident(c), ident(c)) for c in updated
        )
        query += sql.SQL("do update set {}").format(assignments)
        if compared:  # leave unchanged rows alone: a replayed batch changes nothing, not even synced_at
            query += sql.SQL(" where row({}) is distinct from row({})").format(
                sql.SQL(", ").join(side("t", c) for c in compared),
                sql.SQL(", ").join(side("excluded", c) for c in compared),
            )
        return query

    def _row_by_row(
        self, conn: psycopg.Connection, good: list, columns: dict[str, str]
    ) -> dict[int, RecordResult]:
        """The slow path after a failed merge: each record in its own savepoint, in order."""
        out: dict[int, RecordResult] = {}
        delete = sql.SQL("delete from {} where {} = %s").format(
            self._table_sql(with_params=True), _ident(self.key_column, with_params=True)
        )
        statements: dict[tuple[str, ...], sql.Composed] = {}
        with conn.transaction():
            for i, record, key, fields in good:
                try:
                    with conn.transaction():
                        if record.action == "delete":
                            conn.execute(delete, [key])
                        else:
                            names = tuple(sorted(fields))
                            if names not in statements:
                                statements[names] = self._upsert_sql(list(names), columns, source=None)
                            params = [key, *(self._value(fields[f], columns[f]) for f in names)]
                            if IDEMPOTENCY in columns:
                                params.append(record.idempotency_key)
                            conn.execute(statements[names], params)
                except _TRANSIENT:
                    raise
                except (psycopg.Error, TypeError, ValueError) as exc:
                    out[i] = _failed(record, describe_error(exc))
                else:
                    out[i] = RecordResult(record.idempotency_key, "sent", remote_id=str(key))
        return out


def _failed(record: OutboundRecord, error: str, *, retryable: bool = False) -> RecordResult:
    return RecordResult(record.idempotency_key, "failed", retryable=retryable, error=error)
