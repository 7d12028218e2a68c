"""`tideline run` and `tideline summary`: the pipeline through Dagster on a landing zone, and the
summary of a warehouse's last run."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import shutil
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from tideline.settings import (
    DEFAULT_HOME,
    DEFAULT_WAREHOUSE_NAME,
    DUCKDB_ONLY_REASON,
    PG_PASSWORD,
    Settings,
    read_sandbox_secrets,
    validate_as_of,
)

PIPELINE_JOB = "tideline_pipeline"


def settings_from(args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    """Settings from the environment, overridden by --target, --home, --warehouse, --raw-dir and
    --as-of (--target wins over TIDELINE_TARGET)."""
    target = getattr(args, "target", None)
    base = Settings.from_env({**env, "TIDELINE_TARGET": target} if target else env)
    home = Path(args.home).resolve() if getattr(args, "home", None) else base.home
    if getattr(args, "warehouse", None):
        warehouse = Path(args.warehouse).resolve()
    elif getattr(args, "home", None):
        warehouse = home / DEFAULT_WAREHOUSE_NAME
    else:
        warehouse = base.warehouse
    settings = replace(base, home=home, warehouse=warehouse)
    if getattr(args, "raw_dir", None):
        settings = replace(settings, raw_dir=Path(args.raw_dir).resolve())
    if getattr(args, "as_of", None) is not None:
        settings = replace(settings, as_of=validate_as_of(args.as_of))
    return settings


def prepare_dagster_home(settings: Settings) -> Path:
    """The Dagster instance folder of these settings (the warehouse's own, or $DAGSTER_HOME when
    set: then every warehouse shares it) with the repo's dagster.yaml for TIDELINE_DAGSTER_STORAGE
    (dagster.yaml, or config/dagster/postgres.yaml). Tideline keeps its own instances' dagster.yaml
    current; a shared instance keeps its own once it has one, and is refused when postgres storage
    is asked for and its own file stores runs elsewhere."""
    dagster_home = settings.instance_dir
    dagster_home.mkdir(parents=True, exist_ok=True)
    source, target = settings.instance_config, dagster_home / "dagster.yaml"
    stale = not target.exists() or (
        not settings.shares_instance and target.read_bytes() != source.read_bytes()
    )
    if source.exists() and stale:
        shutil.copyfile(source, target)
    elif settings.dagster_storage == "postgres" and not stores_on_postgres(target):
        raise ValueError(
            f"TIDELINE_DAGSTER_STORAGE=postgres, but {target} (the shared instance's own, which "
            "tideline does not overwrite) keeps runs in SQLite: copy config/dagster/postgres.yaml "
            "over it, or unset TIDELINE_DAGSTER_STORAGE"
        )
    return dagster_home


def stores_on_postgres(instance_yaml: Path) -> bool:
    """Whether a dagster.yaml puts its run storage on PostgreSQL (`storage: postgres:` or a
    dagster_postgres run_storage)."""
    import yaml

    config = yaml.safe_load(instance_yaml.read_text()) or {}
    storage = config.get("storage") or {}
    run_storage = config.get("run_storage") or {}
    return "postgres" in storage or str(run_storage.get("module", "")).startswith("dagster_postgres")


def reach_dagster_storage(url: str, timeout_seconds: int = 5) -> None:
    """Connects once to the PostgreSQL run storage before a run, so an unreachable server or a
    wrong password is one sentence (ValueError) instead of Dagster's retries and a traceback. The
    message never repeats the URL (it may hold a password); libpq's reason names host and user."""
    import psycopg2

    try:
        psycopg2.connect(
            url.replace("postgresql+psycopg2://", "postgresql://", 1), connect_timeout=timeout_seconds
        ).close()
    except psycopg2.Error as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ValueError(
            f"cannot reach the Dagster run storage on PostgreSQL (TIDELINE_DAGSTER_PG_URL): {reason}; "
            "start the server or fix the URL, or unset TIDELINE_DAGSTER_STORAGE to keep runs in SQLite"
        ) from None


def reach_postgres(settings: Settings, env: Mapping[str, str], timeout_seconds: int = 5) -> None:
    """Connects once to the PostgreSQL warehouse before a run on the postgres target, so an
    unreachable server or a refused login is one sentence with libpq's reason (ValueError:
    tideline.landing.postgres.PostgresUnreachable), not a failed step."""
    from tideline.landing.postgres import connect

    conninfo = settings.postgres.conninfo(env.get(PG_PASSWORD, ""), connect_timeout=timeout_seconds)
    connect(conninfo, what=f"the PostgreSQL warehouse {settings.warehouse_label}").close()


def today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


# What `tideline run --full-refresh` reaches: the landing load reads every file again, and both dbt
# builds rebuild their incremental models whole (orchestration/dbt.py, DbtBuildConfig).
FULL_REFRESH_OPS = ("landing_zone", "tideline_dbt_assets", "tideline_dbt_scored_assets")


def full_refresh_ops() -> dict[str, dict]:
    """The `ops` run config of a full refresh: `full_refresh` set on every op of FULL_REFRESH_OPS."""
    return {op: {"config": {"full_refresh": True}} for op in FULL_REFRESH_OPS}


def run_pipeline(
    settings: Settings,
    env: Mapping[str, str],
    verbose: bool = False,
    activation_values: Mapping[str, str] | None = None,
    launched_by: str | None = None,
    full_refresh: bool = False,
    retrain: bool = False,
) -> bool:
    """Materialise every asset and run every check through Dagster. True when the run succeeded.

    The run is recorded in the warehouse's own Dagster instance (or the shared $DAGSTER_HOME),
    tagged with its raw dir, warehouse and as-of date, under the job `tideline_pipeline` of the
    code location `make ui` / `tideline ui` serve. `env` is the CLI's environment (the activation
    config's variables, the console's settings); `activation_values` are `${VAR}` values given as
    data (the local destinations'). The console shows one line per step; dbt's detail and every
    log line go to <state folder>/logs/<run id>.log. The run's syncs record who launched it:
    cli:<launched_by>, or cli:<the OS user> (tideline_sync.sync_runs.launched_by). `full_refresh`:
    the landing load reads every file again (else only new and changed ones) and dbt rebuilds its
    incremental models whole (`dbt build --full-refresh`). `retrain`: every model is trained now,
    even while the one in the registry is fresh (else only when due)."""
    if not settings.raw_dir.is_dir():
        raise SystemExit(f"tideline: raw dir {settings.raw_dir} does not exist")
    settings.remember()  # as given: a run without --as-of lets the UI's runs compute as of their day
    # one as-of date for the whole run (dbt, scoring, report), the day it starts when not given
    settings = replace(settings, as_of=settings.as_of or today())
    if settings.on_postgres:
        reach_postgres(settings, env)
    instance_dir = prepare_dagster_home(settings)
    if settings.dagster_storage == "postgres":
        reach_dagster_storage(env.get("TIDELINE_DAGSTER_PG_URL", ""))
    settings.landing_workspace.parent.mkdir(parents=True, exist_ok=True)
    if not warehouse_free(settings):
        return False

    from tideline.dbt_manifest import generate_models, parse_dbt_project

    regenerated = generate_models()
    if regenerated:
        print(
            f"Regenerated from the audience files and tag rules: {', '.join(regenerated)} (commit them)",
            flush=True,
        )
    parse_dbt_project()
    import dagster as dg

    from orchestration.activation import LAUNCHED_BY_TAG
    from orchestration.console import console_run_config, failure_paragraph
    from orchestration.definitions import duckdb_only_steps
    from orchestration.runner import load_definitions, run_job, step_seconds

    skipped = duckdb_only_steps(load_definitions(settings, env, activation_values))
    run_id = str(uuid.uuid4())
    log_path = settings.logs_dir / f"{run_id}.log"
    loggers = console_run_config(
        log_path, verbose, level=env.get("TIDELINE_LOG_LEVEL", ""), no_color=bool(env.get("NO_COLOR"))
    )
    run_config = {
        "loggers": loggers,
        "resources": {"run_log": {"config": {"logs_dir": str(settings.logs_dir), "echo": verbose}}},
    }
    if full_refresh:
        run_config["ops"] = full_refresh_ops()
    if retrain and settings.on_postgres:
        skipped.append("--retrain (the models are trained in the ml/ steps)")
    elif retrain:
        from orchestration.ml import retrain_run_config

        run_config.setdefault("ops", {}).update(retrain_run_config()["ops"])
    print(
        f"Running {PIPELINE_JOB} through Dagster as of {settings.as_of}: {settings.raw_dir} -> "
        f"{settings.warehouse_label}\n  run {run_id}, log {log_path}",
        flush=True,
    )
    report_skipped(skipped, log_path)
    started = time.monotonic()
    with dg.DagsterInstance.from_config(str(instance_dir)) as instance:
        tags = {LAUNCHED_BY_TAG: f"cli:{launched_by or os_user()}"}
        outcome = run_job(instance, PIPELINE_JOB, run_config, tags=tags, run_id=run_id)
        steps = step_seconds(instance, outcome.run_id)
    seconds = time.monotonic() - started
    status = "succeeded" if outcome.success else "FAILED"
    print(f"Dagster run {outcome.run_id} {status} in {seconds:.1f}s", flush=True)
    if steps:
        print(f"  slowest steps: {slowest_steps(steps)}", flush=True)
    if not outcome.success:
        paragraph = failure_paragraph(outcome.events, log_path, settings.raw_dir, outcome.planned_steps)
        print(paragraph, file=sys.stderr, flush=True)
    return outcome.success


def report_skipped(steps: list[str], log_path: Path) -> None:
    """One line per step the run leaves out on PostgreSQL, with the reason, on the console and at
    the top of the run's log."""
    lines = [f"  - skipped {step}: {DUCKDB_ONLY_REASON}" for step in steps]
    if not lines:
        return
    print("\n".join(lines), flush=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a", encoding="utf-8") as log:
        log.write("\n".join(line.strip() for line in lines) + "\n")


def slowest_steps(steps: Mapping[str, float], count: int = 5) -> str:
    """'dbt build 110.2s, activation/win_back_dormant__email 67.5s, ...': where a run's time went
    (the Dagster UI's run page has every step; `make bench` records them)."""
    from tideline.reporting.console import step_label

    return ", ".join(f"{step_label(key)} {seconds:.1f}s" for key, seconds in list(steps.items())[:count])


def os_user() -> str:
    """The person at the terminal, as the OS names them ('unknown' when it cannot)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def warehouse_free(settings: Settings) -> bool:
    """Wait (up to TIDELINE_LOCK_WAIT_SECONDS) while another process holds the warehouse; False
    with one sentence on stderr when it still does."""
    from tideline.warehouse import WarehouseLocked, connect_waiting

    try:
        connect_waiting(
            settings.landing_workspace,
            wait_seconds=settings.lock_wait_seconds,
            on_wait=lambda message: print(f"Waiting: {message} ...", flush=True),
            bi_path=str(settings.bi_path),
        ).close()
    except WarehouseLocked as exc:
        print(f"tideline: {exc}", file=sys.stderr, flush=True)
        return False
    return True


def connect_warehouse(settings: Settings, read_only: bool = False):  # noqa: ANN201 - a DuckDB connection
    """The warehouse for a command: waits (up to TIDELINE_LOCK_WAIT_SECONDS) while another process
    holds it, saying so on stderr, then gives the one-sentence lock error naming the BI copy."""
    from tideline.warehouse import connect_waiting

    return connect_waiting(
        settings.warehouse,
        read_only=read_only,
        wait_seconds=settings.lock_wait_seconds,
        on_wait=lambda message: print(f"tideline: {message}", file=sys.stderr),
        bi_path=str(settings.bi_path),
    )


def print_summary(settings: Settings, read_from: Path | None = None, note: str = "") -> None:
    from tideline.reporting.summary import build_summary

    summary = build_summary(
        settings.warehouse,
        home=settings.state_dir,
        bi_path=settings.bi_path,
        ui_command=ui_command(settings),
        read_from=read_from,
    )
    print()
    if note:
        print(note)
    print(summary)


def ui_command(settings: Settings) -> str:
    """How to open the Dagster UI on this warehouse's runs."""
    if settings.shares_instance:
        return f"DAGSTER_HOME={settings.instance_dir} tideline ui --warehouse {settings.warehouse}"
    if settings.state_dir == DEFAULT_HOME:
        return "make ui"
    if settings.state_dir == settings.home:  # the default warehouse of another home
        return f"tideline ui --home {settings.home}"
    home = f" --home {settings.home}" if settings.home != DEFAULT_HOME else ""
    return f"tideline ui --warehouse {settings.warehouse}{home}"


def cmd_run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from tideline.commands.demo import with_local_destinations

    settings = settings_from(args, env)
    local = args.local_destinations if args.local_destinations is not None else not settings.activation_config
    if settings.on_postgres and local:  # nothing sends on PostgreSQL yet: no destinations to start
        print(f"Local destinations not started: activation {DUCKDB_ONLY_REASON}", flush=True)
        local = False
    if local:
        with with_local_destinations(settings, env) as (settings, values):
            ok = run_pipeline(
                settings,
                env,
                args.verbose,
                values,
                launched_by=args.by,
                full_refresh=args.full_refresh,
                retrain=args.retrain,
            )
    else:
        ok = run_pipeline(
            settings,
            env,
            args.verbose,
            launched_by=args.by,
            full_refresh=args.full_refresh,
            retrain=args.retrain,
        )
    if ok and settings.on_postgres:
        print(
            f"\nSummary: skipped, it {DUCKDB_ONLY_REASON}. The landing and dbt tables are in "
            f"{settings.warehouse_label} (schemas landing, staging, intermediate, marts)."
        )
    elif ok:
        print_summary(settings)
    return 0 if ok else 1


def cmd_summary(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """The summary of the warehouse's last run. While a run holds the warehouse, the summary of the
    BI copy (the last complete run) instead."""
    import duckdb

    from tideline.warehouse import lock_holder

    settings = settings_from(args, env)
    if not settings.warehouse.exists():
        print(f"tideline: no warehouse at {settings.warehouse}: run `tideline run` first", file=sys.stderr)
        return 1
    try:
        print_summary(settings)
    except duckdb.IOException as exc:
        holder = lock_holder(exc)
        if holder is None or not settings.bi_path.exists():
            raise
        note = (
            f"(the warehouse is in use by PID {holder[0]}: this is the summary of the BI copy, "
            f"the last complete run)"
        )
        print_summary(settings, read_from=settings.bi_path, note=note)
    return 0


def activation_config_of(settings: Settings, env: Mapping[str, str]):  # noqa: ANN201 - ActivationConfig
    """The activation config of `settings`, its ${VAR}s from `env` and the sandbox secrets of the
    warehouse's state folder (written when the local destinations ran)."""
    from activation.config import load_config

    secrets = read_sandbox_secrets(settings.secrets_path) if settings.secrets_path.exists() else {}
    return load_config(settings.activation_config or None, env={**secrets, **env})


def staff_config_of(settings: Settings, config):  # noqa: ANN001, ANN201 - ActivationConfig -> StaffConfig | None
    """The staff notifications file next to the activation config, or None when there is none
    (journey notify steps and `tideline staff notify` read it)."""
    from activation.staff.config import optional_staff_config

    return optional_staff_config(settings.activation_config, destinations=config.destinations, env=config.env)


def sync_limits_of(settings: Settings):  # noqa: ANN201 - activation.warehouse.DuckDBLimits
    """DuckDB's limits while a sync or a tick runs (TIDELINE_DUCKDB_*), from the settings alone."""
    from activation.warehouse import DuckDBLimits

    return DuckDBLimits.resolve(
        settings.duckdb_memory_limit, settings.duckdb_threads, settings.duckdb_temp_dir, env={}
    )
