"""Dagster resources: configuration resolved once into typed values every asset reads.

- `WarehouseResource`: the DuckDB file. DuckDB allows one writer and, while it writes, no other
  process at all: a run waits for another process's lock up to `lock_wait_seconds`
  (tideline/warehouse.py); sensors never wait (they skip the tick instead). On the postgres
  target it also names the PostgreSQL warehouse (`connect_postgres`; its password a dg.EnvVar, so
  it never enters the run's config), and the DuckDB file is the landing reader's workspace.
- `PipelineSettings`: the landing zone and the as-of date. `MLSettings`: model settings.
- `ActivationConfigResource`: the activation config, loaded and validated once per run, with the
  environment it names resolved through dg.EnvVar (secrets never enter the run's config), and
  DuckDB's limits while a sync runs.
- `RunLog`: where a run's detail goes.

Nothing here reads or writes os.environ: orchestration/definitions.py builds these from Settings.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from pydantic import PrivateAttr

from activation.config import ActivationConfig, environment_names, load_config
from activation.staff.config import staff_config_path
from activation.warehouse import DuckDBLimits
from tideline.settings import PG_PASSWORD, PostgresTarget, Settings, read_sandbox_secrets
from tideline.warehouse import connect_waiting


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file. DuckDB allows one writer at a time: every asset that
    writes through this resource is in the `warehouse` concurrency pool. Inside a run, a
    connection waits up to `lock_wait_seconds` for another process to let go of the file."""

    path: str
    lock_wait_seconds: float = 0.0
    bi_path: str = ""  # the BI copy (serving/bi_warehouse publishes it; the lock message names it)
    # DuckDB's limits for every step that opens the warehouse through this resource (landing load,
    # scores, report) and for dbt (orchestration/dbt.py passes them as --vars); '' / 0: DuckDB's own
    memory_limit: str = ""
    threads: int = 0
    temp_directory: str = ""
    # the postgres target (tideline.settings.PostgresTarget): dbt and the landing tables are there
    target: str = "duckdb"
    pg_host: str = ""
    pg_port: int = 5432
    pg_user: str = ""
    pg_database: str = ""
    pg_password: str = ""  # dg.EnvVar("TIDELINE_PG_PASSWORD") when set: never a value in the config
    _in_run: bool = PrivateAttr(default=False)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # a run waits for a lock; a sensor tick (no run) fails fast and skips
        self._in_run = context.dagster_run is not None

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        if not read_only:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        con = connect_waiting(
            self.path,
            read_only=read_only,
            wait_seconds=self.lock_wait_seconds if self._in_run else 0.0,
            on_wait=dg.get_dagster_logger().warning,
            bi_path=self.bi_path,
        )
        try:
            con.execute("set TimeZone = 'UTC'")
            self._limit(con)
            yield con
        finally:
            con.close()

    def _limit(self, con: duckdb.DuckDBPyConnection) -> None:
        """The memory limit, threads and spill folder on a new connection (DuckDB keeps a spill
        folder once it has spilled there: a database this process already uses keeps its own)."""
        if self.memory_limit:
            con.execute("set memory_limit = ?", [self.memory_limit])
        if self.threads:
            con.execute("set threads = ?", [self.threads])
        if self.temp_directory:
            Path(self.temp_directory).mkdir(parents=True, exist_ok=True)
            with suppress(duckdb.NotImplementedException):
                con.execute("set temp_directory = ?", [self.temp_directory])

    @property
    def on_postgres(self) -> bool:
        return self.target == "postgres"

    def postgres_conninfo(self) -> str:
        """The libpq connection string of the PostgreSQL warehouse (the postgres target only)."""
        if not self.on_postgres:
            raise ValueError("the warehouse is a DuckDB file, not PostgreSQL (target duckdb)")
        target = PostgresTarget(self.pg_host, self.pg_port, self.pg_user, self.pg_database)
        return target.conninfo(self.pg_password)

    @contextmanager
    def connect_postgres(self) -> Iterator[Any]:
        """An autocommit psycopg connection to the PostgreSQL warehouse, closed afterwards; a
        PostgresUnreachable (one sentence with libpq's reason) when it cannot be reached."""
        from tideline.landing.postgres import connect

        pg = connect(self.postgres_conninfo())
        try:
            yield pg
        finally:
            pg.close()

    def query(self, sql: str) -> list[tuple]:
        """The rows of a statement without parameters, in the warehouse dbt builds: the DuckDB
        file, or the PostgreSQL database on the postgres target (SQL both engines run)."""
        if self.on_postgres:
            with self.connect_postgres() as pg:
                return pg.execute(sql).fetchall()
        with self.connect(read_only=True) as con:
            return con.execute(sql).fetchall()

    def wait_until_free(self) -> None:
        """Before a program that opens the file itself (dbt): wait until no other process holds it."""
        with self.connect():
            pass


class PipelineSettings(dg.ConfigurableResource):
    """Where the landing zone is and which date the marts are computed as of ('' = today)."""

    raw_dir: str
    as_of: str = ""


class RunLog(dg.ConfigurableResource):
    """Where a run's detail goes: <logs_dir>/<run id>.log (dbt's output, and from `tideline run`
    every Dagster log line). `echo` also prints dbt's output to stdout, as the UI's captured
    stdout of the step; `tideline run` turns it off unless --verbose."""

    logs_dir: str
    echo: bool = True

    def path(self, run_id: str) -> Path:
        return Path(self.logs_dir) / f"{run_id}.log"


class MLSettings(dg.ConfigurableResource):
    """Where model artefacts live and the documented model settings."""

    models_dir: str
    churn_horizon_days: int = 90  # churn: no purchase in the next N days
    propensity_horizon_days: int = 30  # propensity: a purchase in the next N days
    clv_horizon_days: int = 365  # predicted_clv and expected_purchases cover this many days
    clv_holdout_days: int = 90  # held-out window for checking the CLV model
    training_cutoffs: int = 4
    cutoff_step_days: int = 30
    max_training_rows: int = 200_000  # a model is fitted on a stratified sample of at most this many rows
    retrain_every_days: int = (
        7  # a model is reused until this old (0: retrain every run), see models_ml/schedule.py
    )
    at_risk_threshold: float = 0.5  # churn probability from which a customer is on the at-risk list
    drift_psi_warn: float = 0.2  # warn when the churn-score distribution moves more than this (PSI)
    seed: int = 42


class ActivationConfigResource(dg.ConfigurableResource):
    """The activation config and DuckDB's limits while a sync runs.

    `config()` loads and validates the YAML once per run (a ConfigError names the file and the key)
    and every sync asset and alert check of the run shares it. `${VAR}` and the secrets the config
    names are looked up in, later winning: the sandbox secrets in `secrets_file` (the state
    folder's secrets.json, only when the local destinations run), `environment` (one dg.EnvVar per
    variable the config names that is set, so values never enter the run's config nor the UI) and
    `values` (given as data: the local destinations' addresses, the demo's quiet hours).

    Unset ('' / 0), the DuckDB limits are activation/warehouse.py's defaults (128MB, 2 threads,
    `<warehouse>.tmp`); DuckDB spills to the temp directory beyond the memory limit, and a sync
    that still runs out names the setting."""

    config_path: str = ""  # '' = config/activation.yml
    environment: dict[str, str] = {}
    values: dict[str, str] = {}
    secrets_file: str = ""
    workers: int = 4  # concurrent batches per sync (they share the destination's rate limit)
    memory_limit: str = ""  # DuckDB size, e.g. 256MB or 1GB
    threads: int = 0
    temp_directory: str = ""
    journeys_dir: str = ""  # '' = config/journeys
    journey_clock: str = ""  # '' = the wall clock: the clock journey ticks run at (the demo sets it)
    _loaded: ActivationConfig | None = PrivateAttr(default=None)

    def config(self) -> ActivationConfig:
        """The validated activation config, read once per resource (once per run)."""
        if self._loaded is None:
            self._loaded = load_config(self.config_path or None, env=self.resolved_environment())
        return self._loaded

    def resolved_environment(self) -> dict[str, str]:
        return {**read_sandbox_secrets(self.secrets_file), **self.environment, **self.values}

    def duckdb_limits(self) -> DuckDBLimits:
        return DuckDBLimits.resolve(self.memory_limit, self.threads, self.temp_directory, env={})

    @classmethod
    def from_environment(
        cls, config_path: str, environ: Mapping[str, str], **fields: Any
    ) -> ActivationConfigResource:
        """The resource for the config at `config_path` ('' = config/activation.yml) with a dg.EnvVar
        for each variable the config (or the staff notifications file next to it) names that is set
        in `environ` (an entry point's environment):
        Dagster resolves them when the resource is built, and shows their names, never their values."""
        # the staff notifications file next to it names its own (link base, quiet hours, sandbox)
        names = {*environment_names(config_path or None), *environment_names(staff_config_path(config_path))}
        environment = {name: dg.EnvVar(name) for name in sorted(names) if name in environ}
        return cls(config_path=config_path, environment=environment, **fields)


def warehouse_resource(settings: Settings, environ: Mapping[str, str]) -> WarehouseResource:
    """The warehouse of `settings`: the DuckDB file, or on the postgres target the landing reader's
    workspace and the database (its password a dg.EnvVar when `environ` sets it)."""
    postgres: dict[str, Any] = {}
    if settings.postgres is not None:
        pg = settings.postgres
        password = dg.EnvVar(PG_PASSWORD) if environ.get(PG_PASSWORD) else ""
        postgres = {
            "target": "postgres",
            "pg_host": pg.host,
            "pg_port": pg.port,
            "pg_user": pg.user,
            "pg_database": pg.database,
            "pg_password": password,
        }
    return WarehouseResource(
        path=str(settings.landing_workspace),
        lock_wait_seconds=settings.lock_wait_seconds,
        bi_path=str(settings.bi_path),
        memory_limit=settings.pipeline_memory_limit,
        threads=settings.pipeline_threads,
        temp_directory=str(settings.pipeline_temp_dir),
        **postgres,
    )


def activation_config_resource(
    settings: Settings, environ: Mapping[str, str], values: Mapping[str, str] | None = None
) -> ActivationConfigResource:
    """The resource for `settings`: `values` given as data, the sandbox secrets when the local
    destinations run, DuckDB's limits of the settings (see `from_environment` for `environ`)."""
    return ActivationConfigResource.from_environment(
        settings.activation_config,
        environ,
        values=dict(values or {}),
        secrets_file=str(settings.secrets_path) if settings.local_destinations else "",
        memory_limit=settings.duckdb_memory_limit,
        threads=settings.duckdb_threads,
        temp_directory=settings.duckdb_temp_dir,
        journeys_dir=settings.journeys_dir,
        journey_clock=settings.journey_clock,
    )
