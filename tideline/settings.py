"""Where things live and how a run is configured: one Settings, resolved once from the environment.

`Settings.from_env(env)` reads a mapping, never os.environ itself: the entry points (the CLI,
tideline/cli.py, and the Dagster code location, orchestration/definitions.py) hand it theirs, and
everything downstream gets typed values (Dagster resources, function arguments).

TIDELINE_HOME                 folder for everything generated (default: <repo>/.tideline)
TIDELINE_WAREHOUSE            DuckDB file (default: $TIDELINE_HOME/warehouse.duckdb)
TIDELINE_RAW_DIR              landing zone (default: $TIDELINE_HOME/demo/raw)
TIDELINE_AS_OF                as-of date YYYY-MM-DD (default: today; the demo passes its own)
TIDELINE_LOCK_WAIT_SECONDS    how long a run waits for another process to release the warehouse (60)
TIDELINE_ACTIVATION_CONFIG    the activation config (default: config/activation.yml)
TIDELINE_LOCAL_DESTINATIONS   1 when the local destinations of the default config run (set by the CLI for
                              the Dagster UI it starts): the sandbox secrets come from the state folder
TIDELINE_DUCKDB_MEMORY_LIMIT, TIDELINE_DUCKDB_THREADS, TIDELINE_DUCKDB_TEMP_DIR
                              DuckDB's limits while a sync runs (activation/warehouse.py has the defaults)
TIDELINE_MEMORY_LIMIT, TIDELINE_THREADS, TIDELINE_TEMP_DIR
                              DuckDB's limits for the rest of a run (landing load, dbt, scores, report):
                              default 40% of the machine's memory up to 4GB, every core, and
                              <state folder>/duckdb_spill for what does not fit
DAGSTER_HOME                  when set, the Dagster instance every warehouse's runs share
TIDELINE_DAGSTER_STORAGE      where the Dagster instance stores runs, event logs and schedules: sqlite
                              (default, files in the instance folder) or postgres (config/dagster/
                              postgres.yaml), which needs TIDELINE_DAGSTER_PG_URL
TIDELINE_DAGSTER_PG_URL       postgresql+psycopg2://USER:PASSWORD@HOST:PORT/DATABASE of it; Dagster
                              reads it from the environment itself, Settings only checks it is there
TIDELINE_TARGET               the warehouse engine: duckdb (default, the file above) or postgres (a
                              PostgreSQL database; `tideline run --target` overrides it)
TIDELINE_PG_HOST, TIDELINE_PG_PORT, TIDELINE_PG_USER, TIDELINE_PG_DATABASE, TIDELINE_PG_PASSWORD
                              that database, as dbt_project/profiles.yml's `postgres` output reads them:
                              host, user and database are required with the postgres target, the port
                              defaults to 5432; the password is never a setting's value here: it is
                              read where a connection is made (libpq's ~/.pgpass also works)

On the postgres target, the landing load still reads the files with DuckDB, in a workspace file of
the state folder (`landing_workspace.duckdb`), and ships what changed to the database
(tideline/landing/postgres.py); the state folder of a PostgreSQL warehouse is named after its
database and a hash of where it is (`$TIDELINE_HOME/warehouses/postgres-<database>-<8 hex>/`).

Runs are separate: everything a run generates about a warehouse (trained models, reports, the
local destinations' outbox, the Dagster instance with its run history, run logs and the BI copy)
lives in that warehouse's state folder. The default warehouse's state folder is $TIDELINE_HOME
itself (so `.tideline/reports/`, `.tideline/outbox/` stay where the README says); any other
warehouse gets `$TIDELINE_HOME/warehouses/<file stem>-<8 hex of its path>/`, so two warehouses
never read each other's models, reports, outbox or runs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
DEFAULT_HOME = (REPO_ROOT / ".tideline").resolve()
DEFAULT_WAREHOUSE_NAME = "warehouse.duckdb"
DEFAULT_LOCK_WAIT_SECONDS = 60.0
DEFAULT_MEMORY_CAP_MB = 4096  # the pipeline's DuckDB memory limit: 40% of the machine's, at most this
_SIZE = re.compile(r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)
# run tags every Dagster run of a Tideline job carries (filter on them in the UI's Runs page)
TAG_RAW_DIR = "tideline/raw_dir"
TAG_WAREHOUSE = "tideline/warehouse"
TAG_AS_OF = "tideline/as_of"
TODAY = "today"  # the as-of tag of runs computed as of the day they run (schedules)
# TIDELINE_DAGSTER_STORAGE -> the dagster.yaml copied into the instance folder
DAGSTER_INSTANCE_CONFIGS = {
    "sqlite": REPO_ROOT / "dagster.yaml",
    "postgres": REPO_ROOT / "config" / "dagster" / "postgres.yaml",
}
DAGSTER_PG_URL_EXAMPLE = "postgresql+psycopg2://USER:PASSWORD@HOST:5432/DATABASE"
# dagster-postgres is built on psycopg2 (its NOTIFY of new events binds the payload client-side);
# SQLAlchemy 2.1 gives a plain postgresql:// URL psycopg 3, whose server-side binding breaks it
DAGSTER_PG_SCHEME = "postgresql+psycopg2"
TARGETS = ("duckdb", "postgres")  # TIDELINE_TARGET / tideline run --target
# why a step does not run on the postgres target (every step that is DuckDB-only Python so far)
DUCKDB_ONLY_REASON = "runs on DuckDB only so far; issue 18"
# the PostgreSQL warehouse's variables (dbt_project/profiles.yml's `postgres` output reads the same)
PG_REQUIRED = ("TIDELINE_PG_HOST", "TIDELINE_PG_USER", "TIDELINE_PG_DATABASE")
PG_PORT = "TIDELINE_PG_PORT"
PG_PASSWORD = "TIDELINE_PG_PASSWORD"  # read where a connection is made, never kept in Settings
# the landing reader's DuckDB file in a postgres target's state folder (not landing.duckdb: a file
# named so is attached as catalog `landing`, which DuckDB cannot tell from the schema `landing`)
LANDING_WORKSPACE = "landing_workspace.duckdb"


@dataclass(frozen=True)
class PostgresTarget:
    """Where a PostgreSQL warehouse is (no password: it stays in the environment)."""

    host: str
    port: int
    user: str
    database: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PostgresTarget:
        """The TIDELINE_PG_* variables; a ValueError naming every missing one."""
        missing = [name for name in PG_REQUIRED if not env.get(name, "").strip()]
        if missing:
            raise ValueError(
                f"the postgres target needs {', '.join(missing)} (the PostgreSQL warehouse's host, user "
                f"and database, which dbt_project/profiles.yml's postgres output reads too; "
                f"{PG_PORT} defaults to 5432, {PG_PASSWORD} is optional): set them, or use --target duckdb"
            )
        port = env.get(PG_PORT, "").strip() or "5432"
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{PG_PORT}={port!r} is not a port number (use e.g. 5432, or leave it unset)")
        return cls(
            host=env["TIDELINE_PG_HOST"].strip(),
            port=int(port),
            user=env["TIDELINE_PG_USER"].strip(),
            database=env["TIDELINE_PG_DATABASE"].strip(),
        )

    @property
    def label(self) -> str:
        """postgresql://USER@HOST:PORT/DATABASE: how runs, tags and the console name it."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    def conninfo(self, password: str = "", connect_timeout: int = 10) -> str:
        """The libpq connection string (the password only when given: else libpq's own sources)."""
        from psycopg.conninfo import make_conninfo

        extra = {"password": password} if password else {}
        return make_conninfo(
            host=self.host,
            port=str(self.port),
            user=self.user,
            dbname=self.database,
            connect_timeout=str(connect_timeout),
            application_name="tideline",
            **extra,
        )


@dataclass(frozen=True)
class Settings:
    home: Path
    warehouse: Path
    raw_dir: Path
    as_of: str  # "" means today
    dagster_home: Path | None = None  # an explicitly shared Dagster instance ($DAGSTER_HOME)
    lock_wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS
    activation_config: str = ""  # '' = config/activation.yml
    local_destinations: bool = False  # the local destinations run: sandbox secrets from secrets_path
    duckdb_memory_limit: str = ""  # '' = activation/warehouse.py's default (also threads 0, temp dir '')
    duckdb_threads: int = 0
    duckdb_temp_dir: str = ""
    journeys_dir: str = ""  # '' = config/journeys (activation/journeys/files.py)
    journey_clock: str = ""  # '' = the wall clock; an ISO time: the clock journey ticks run at (demo, tests)
    memory_limit: str = ""  # the pipeline's DuckDB memory limit ('' = default_memory_limit())
    threads: int = 0  # the pipeline's DuckDB threads (0 = every core)
    temp_dir: str = ""  # where DuckDB spills ('' = <state folder>/duckdb_spill)
    dagster_storage: str = "sqlite"  # the Dagster instance's storage: a key of DAGSTER_INSTANCE_CONFIGS
    target: str = "duckdb"  # the warehouse engine: a name of TARGETS
    postgres: PostgresTarget | None = None  # the PostgreSQL warehouse of the postgres target

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Settings from `env` (an entry point's environment), with the defaults above."""
        home = Path(env.get("TIDELINE_HOME") or DEFAULT_HOME).resolve()
        warehouse = Path(env.get("TIDELINE_WAREHOUSE") or home / DEFAULT_WAREHOUSE_NAME).resolve()
        raw_dir = Path(env.get("TIDELINE_RAW_DIR") or home / "demo" / "raw").resolve()
        dagster_home = env.get("DAGSTER_HOME")
        return cls(
            home=home,
            warehouse=warehouse,
            raw_dir=raw_dir,
            as_of=validate_as_of(env.get("TIDELINE_AS_OF", "")),
            dagster_home=Path(dagster_home).resolve() if dagster_home else None,
            lock_wait_seconds=lock_wait_seconds(env.get("TIDELINE_LOCK_WAIT_SECONDS")),
            activation_config=env.get("TIDELINE_ACTIVATION_CONFIG", "").strip(),
            local_destinations=env.get("TIDELINE_LOCAL_DESTINATIONS", "") == "1",
            duckdb_memory_limit=env.get("TIDELINE_DUCKDB_MEMORY_LIMIT", "").strip(),
            duckdb_threads=whole_number("TIDELINE_DUCKDB_THREADS", env.get("TIDELINE_DUCKDB_THREADS")),
            duckdb_temp_dir=env.get("TIDELINE_DUCKDB_TEMP_DIR", "").strip(),
            journeys_dir=env.get("TIDELINE_JOURNEYS_DIR", "").strip(),
            journey_clock=validate_clock(env.get("TIDELINE_JOURNEY_CLOCK", "")),
            memory_limit=validate_size("TIDELINE_MEMORY_LIMIT", env.get("TIDELINE_MEMORY_LIMIT", "")),
            threads=whole_number("TIDELINE_THREADS", env.get("TIDELINE_THREADS")),
            temp_dir=env.get("TIDELINE_TEMP_DIR", "").strip(),
            dagster_storage=validate_dagster_storage(env),
        ).for_target(env.get("TIDELINE_TARGET", ""), env)

    def for_target(self, target: str | None, env: Mapping[str, str]) -> Settings:
        """These settings on `target` (duckdb, postgres; '' or None: duckdb), the PostgreSQL
        warehouse from `env`'s TIDELINE_PG_* variables (a ValueError names the missing ones)."""
        choice = validate_target(target)
        return replace(
            self, target=choice, postgres=PostgresTarget.from_env(env) if choice == "postgres" else None
        )

    @property
    def on_postgres(self) -> bool:
        return self.postgres is not None

    @property
    def warehouse_label(self) -> str:
        """The warehouse as runs, tags and the console name it: the DuckDB file, or the database."""
        return self.postgres.label if self.postgres is not None else str(self.warehouse)

    @property
    def landing_workspace(self) -> Path:
        """The DuckDB file the landing load reads files with: the warehouse itself on DuckDB, a
        workspace in the state folder on PostgreSQL (tideline/landing/postgres.py)."""
        return self.state_dir / LANDING_WORKSPACE if self.on_postgres else self.warehouse

    @property
    def pipeline_memory_limit(self) -> str:
        """DuckDB's memory limit for the landing load, dbt, the scores and the report."""
        return self.memory_limit or default_memory_limit()

    @property
    def pipeline_threads(self) -> int:
        return self.threads or (os.cpu_count() or 1)

    @property
    def pipeline_temp_dir(self) -> Path:
        """Where DuckDB spills what does not fit in the memory limit."""
        return Path(self.temp_dir).resolve() if self.temp_dir else self.state_dir / "duckdb_spill"

    @property
    def state_dir(self) -> Path:
        """The folder for what runs generate about this warehouse (see the module docstring)."""
        if self.postgres is not None:
            return postgres_state_dir(self.home, self.postgres)
        return state_dir_for(self.home, self.warehouse)

    @property
    def models_dir(self) -> Path:
        return self.state_dir / "models"

    @property
    def reports_dir(self) -> Path:
        return self.state_dir / "reports"

    @property
    def outbox_dir(self) -> Path:
        return self.state_dir / "outbox"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def secrets_path(self) -> Path:
        """The sandbox secrets of the local destinations (tideline/demo/local.py writes them, mode 0600)."""
        return self.state_dir / "secrets.json"

    @property
    def bi_path(self) -> Path:
        """The read-only copy BI tools open: republished after every successful pipeline run."""
        return self.state_dir / "bi" / self.warehouse.name

    @property
    def instance_dir(self) -> Path:
        """DAGSTER_HOME of this warehouse's runs: the explicit one when set, else its own."""
        return self.dagster_home or self.state_dir / "dagster"

    @property
    def shares_instance(self) -> bool:
        return self.dagster_home is not None

    @property
    def instance_config(self) -> Path:
        """The repo's dagster.yaml for TIDELINE_DAGSTER_STORAGE (copied into the instance folder)."""
        return DAGSTER_INSTANCE_CONFIGS[self.dagster_storage]

    def run_tags(self) -> dict[str, str]:
        """Tags on every Dagster run of these settings, so runs can be told apart and filtered."""
        return {
            TAG_RAW_DIR: str(self.raw_dir),
            TAG_WAREHOUSE: self.warehouse_label,
            TAG_AS_OF: self.as_of or TODAY,
        }

    def environment(self) -> dict[str, str]:
        """These settings as the environment variables `from_env` reads: for a child process the CLI
        starts (the Dagster UI), so it resolves the same settings."""
        env = {
            "TIDELINE_HOME": str(self.home),
            "TIDELINE_WAREHOUSE": str(self.warehouse),
            "TIDELINE_RAW_DIR": str(self.raw_dir),
            "TIDELINE_AS_OF": self.as_of,
            "TIDELINE_LOCK_WAIT_SECONDS": f"{self.lock_wait_seconds:g}",
            "TIDELINE_ACTIVATION_CONFIG": self.activation_config,
            "TIDELINE_LOCAL_DESTINATIONS": "1" if self.local_destinations else "",
            "TIDELINE_DUCKDB_MEMORY_LIMIT": self.duckdb_memory_limit,
            "TIDELINE_DUCKDB_THREADS": str(self.duckdb_threads or ""),
            "TIDELINE_DUCKDB_TEMP_DIR": self.duckdb_temp_dir,
            "TIDELINE_JOURNEYS_DIR": self.journeys_dir,
            "TIDELINE_JOURNEY_CLOCK": self.journey_clock,
            "TIDELINE_MEMORY_LIMIT": self.memory_limit,
            "TIDELINE_THREADS": str(self.threads or ""),
            "TIDELINE_TEMP_DIR": self.temp_dir,
            "TIDELINE_DAGSTER_STORAGE": self.dagster_storage,
            "TIDELINE_TARGET": self.target,
        }
        if self.postgres is not None:  # the password, if any, is the child's own environment's
            env.update(
                {
                    "TIDELINE_PG_HOST": self.postgres.host,
                    PG_PORT: str(self.postgres.port),
                    "TIDELINE_PG_USER": self.postgres.user,
                    "TIDELINE_PG_DATABASE": self.postgres.database,
                }
            )
        if self.dagster_home is not None:
            env["DAGSTER_HOME"] = str(self.dagster_home)
        return env

    def remember(self) -> None:
        """Record the raw dir and as-of date of this warehouse's last CLI run in its state folder, so
        `tideline ui --warehouse` shows the UI's own runs on the same landing zone."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        record = {"warehouse": str(self.warehouse), "raw_dir": str(self.raw_dir), "as_of": self.as_of}
        (self.state_dir / "last_run.json").write_text(json.dumps(record, indent=2) + "\n")

    def remembered(self) -> Settings:
        """These settings with the raw dir and as-of date of the warehouse's last CLI run, if any (an
        as-of date already set wins: `tideline ui` on the demo home gets the day the demo ran as of)."""
        path = self.state_dir / "last_run.json"
        if not path.exists():
            return self
        record = json.loads(path.read_text())
        as_of = self.as_of or validate_as_of(record.get("as_of"))
        return replace(self, raw_dir=Path(record["raw_dir"]), as_of=as_of)


def state_dir_for(home: Path, warehouse: Path) -> Path:
    """$TIDELINE_HOME for the default warehouse, else $TIDELINE_HOME/warehouses/<stem>-<hash>."""
    home, warehouse = Path(home).resolve(), Path(warehouse).resolve()
    if warehouse == home / DEFAULT_WAREHOUSE_NAME:
        return home
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", warehouse.stem).strip("._") or "warehouse"
    digest = hashlib.sha256(str(warehouse).encode()).hexdigest()[:8]
    return home / "warehouses" / f"{stem[:40]}-{digest}"


def postgres_state_dir(home: Path, postgres: PostgresTarget) -> Path:
    """$TIDELINE_HOME/warehouses/postgres-<database>-<8 hex of user, host, port and database>."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", postgres.database).strip("._") or "database"
    hashed = hashlib.sha256(postgres.label.encode()).hexdigest()[:8]
    return Path(home).resolve() / "warehouses" / f"postgres-{stem[:40]}-{hashed}"


def validate_target(value: str | None) -> str:
    """TIDELINE_TARGET / --target: duckdb ('' or unset) or postgres."""
    choice = (value or "").strip().lower() or "duckdb"
    if choice not in TARGETS:
        raise ValueError(
            f"target {value!r} is not {' or '.join(TARGETS)} (TIDELINE_TARGET or --target; unset: duckdb)"
        )
    return choice


def lock_wait_seconds(value: str | None) -> float:
    """TIDELINE_LOCK_WAIT_SECONDS: a number of seconds, at least 0 (default 60)."""
    if value is None or not value.strip():
        return DEFAULT_LOCK_WAIT_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also rejects nan
        raise ValueError(
            f"TIDELINE_LOCK_WAIT_SECONDS={value!r} is not a number of seconds (use e.g. 60, or 0)"
        )
    return seconds


def read_sandbox_secrets(path: str | Path) -> dict[str, str]:
    """The sandbox secrets the local destinations keep in a state folder's secrets.json (name ->
    value; tideline/demo/local.py writes it, mode 0600); {} for no path or no file."""
    if not path or not Path(path).is_file():
        return {}
    stored = json.loads(Path(path).read_text())
    return {str(k): str(v) for k, v in stored.items()} if isinstance(stored, dict) else {}


def whole_number(name: str, value: str | None) -> int:
    """A whole number >= 0 from setting `name` ('' or unset: 0, the default)."""
    text = (value or "").strip()
    if not text:
        return 0
    if not text.isdigit():
        raise ValueError(f"{name}={value!r} is not a whole number (use e.g. 2, or leave it unset)")
    return int(text)


def validate_dagster_storage(env: Mapping[str, str]) -> str:
    """TIDELINE_DAGSTER_STORAGE: sqlite (unset or empty) or postgres; postgres only with a usable
    TIDELINE_DAGSTER_PG_URL, so a run refuses before it starts rather than when Dagster connects."""
    raw = env.get("TIDELINE_DAGSTER_STORAGE", "")
    choice = raw.strip().lower() or "sqlite"
    if choice not in DAGSTER_INSTANCE_CONFIGS:
        allowed = " or ".join(DAGSTER_INSTANCE_CONFIGS)
        raise ValueError(f"TIDELINE_DAGSTER_STORAGE={raw!r} is not {allowed} (leave it unset for sqlite)")
    if choice == "postgres":
        check_dagster_pg_url(env.get("TIDELINE_DAGSTER_PG_URL", ""))
    return choice


def check_dagster_pg_url(value: str) -> None:
    """A ValueError unless `value` is a PostgreSQL URL with a host and a database. The messages never
    repeat the value: it may hold a password."""
    if not value.strip():
        raise ValueError(
            "TIDELINE_DAGSTER_STORAGE=postgres needs TIDELINE_DAGSTER_PG_URL, the connection of the "
            f"database Dagster stores its runs in ({DAGSTER_PG_URL_EXAMPLE}); set it in the "
            "environment, or unset TIDELINE_DAGSTER_STORAGE to keep runs in SQLite files"
        )
    problem = _pg_url_problem(value.strip())
    if problem:
        raise ValueError(
            f"TIDELINE_DAGSTER_PG_URL is not a PostgreSQL URL like {DAGSTER_PG_URL_EXAMPLE}: {problem} "
            "(the value is not shown: it may hold a password)"
        )


def _pg_url_problem(value: str) -> str:
    """What is wrong with a PostgreSQL URL, or '' (a unix-socket host may be given as ?host=)."""
    parts = urlsplit(value)
    if parts.scheme != DAGSTER_PG_SCHEME:
        return (
            f"it must start with {DAGSTER_PG_SCHEME}:// (dagster-postgres needs the psycopg2 driver; "
            "a plain postgresql:// URL gets psycopg 3 from SQLAlchemy 2.1, which breaks Dagster's "
            "event notifications)"
        )
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        return "its port is not a number"
    if not parts.hostname and "host" not in parse_qs(parts.query):
        return "it names no host"
    if not parts.path.strip("/"):
        return "it names no database (add /DATABASE after the host and port)"
    return ""


def validate_as_of(value: str | None) -> str:
    """'' (today) or a YYYY-MM-DD date; anything else is a clear error."""
    value = (value or "").strip()
    if not value:
        return ""
    try:
        dt.date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"as-of date {value!r} is not a date like 2026-01-31") from exc
    return value


def validate_clock(value: str | None) -> str:
    """'' (the wall clock) or an ISO date-time such as 2026-03-10T09:30 (UTC unless it says)."""
    value = (value or "").strip()
    if not value:
        return ""
    try:
        dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"journey clock {value!r} is not a date-time like 2026-03-10T09:30") from exc
    return value


def default_memory_limit() -> str:
    """40% of the machine's memory, at most DEFAULT_MEMORY_CAP_MB (DuckDB's own default is 80%: a
    run beside BI tools and the sync engine's own limit needs room; DuckDB spills the rest)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return f"{DEFAULT_MEMORY_CAP_MB}MB"
    return f"{max(256, min(DEFAULT_MEMORY_CAP_MB, int(total * 0.4 / 2**20)))}MB"


def validate_size(name: str, raw: str | None) -> str:
    """A DuckDB size such as 4GB or 512MB ('' stays ''); a ValueError naming the setting otherwise."""
    value = (raw or "").strip()
    if value and not _SIZE.match(value):
        raise ValueError(f"{name}={raw!r} is not a size like 512MB or 4GB (or leave it unset)")
    return value.replace(" ", "")
