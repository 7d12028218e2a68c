"""Dagster's own storage on PostgreSQL (issue 18): a real `tideline run` with
TIDELINE_DAGSTER_STORAGE=postgres records its run, its events and its materialisations in the
fixture's PostgreSQL server, not in SQLite files, and another process with the same instance
config (another DAGSTER_HOME folder) sees that run history.

The instance's tables go to a schema of their own in the fixture's database (libpq's
`options=-csearch_path=...` in the URL), so they never meet other tests' tables. The landing zone is
three orders: the whole pipeline, every dbt model and check, in about a minute.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from types import SimpleNamespace
from urllib.parse import quote

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from orchestration.landing import FILES_KEY
from tests.helpers import NO_DBT_UNIT_TESTS, write_csv
from tests.integration.postgres import postgres_dsn  # noqa: F401 - registers the fixture
from tideline.settings import DAGSTER_INSTANCE_CONFIGS, REPO_ROOT

pytestmark = pytest.mark.slow
DIM_CUSTOMERS = dg.AssetKey(["marts", "dim_customers"])
MATERIALIZATION = dg.DagsterEventType.ASSET_MATERIALIZATION.value

# a second process: a DAGSTER_HOME of its own with the postgres variant, listing the runs it sees
LIST_RUNS = """
import json, shutil, sys, tempfile
from pathlib import Path
import dagster as dg
home = Path(tempfile.mkdtemp(prefix="dagster-pg-reader-"))
shutil.copyfile(sys.argv[1], home / "dagster.yaml")
with dg.DagsterInstance.from_config(str(home)) as instance:
    runs = [
        {"run_id": r.run_id, "job": r.job_name, "status": r.status.value, "tags": dict(r.tags)}
        for r in instance.get_runs()
    ]
    key = dg.AssetKey(sys.argv[2].split("/"))
    materialised = instance.get_latest_materialization_event(key)
    print(json.dumps({
        "runs": runs,
        "latest_materialisation_run": materialised.run_id if materialised else None,
        "local_files": sorted(str(p.relative_to(home)) for p in home.rglob("*.db")),
    }))
shutil.rmtree(home)
"""


def dagster_url(dsn: str, schema: str) -> str:
    """The fixture's libpq DSN as the URL TIDELINE_DAGSTER_PG_URL takes, its tables in `schema`."""
    parts = psycopg.conninfo.conninfo_to_dict(dsn)
    user = quote(str(parts.get("user", "postgres")), safe="")
    password = f":{quote(str(parts['password']), safe='')}" if parts.get("password") else ""
    host, port = parts.get("host", "127.0.0.1"), parts.get("port", 5432)
    options = quote(f"-csearch_path={schema}", safe="")
    return f"postgresql+psycopg2://{user}{password}@{host}:{port}/{parts['dbname']}?options={options}"


def rows(dsn: str, schema: str, query: str, params: list) -> list[tuple]:
    """`query` with its {schema} placeholder filled in as a quoted identifier, and bound `params`."""
    with psycopg.connect(dsn) as conn:
        statement = sql.SQL(query).format(schema=sql.Identifier(schema))
        return conn.execute(statement, params).fetchall()


@pytest.fixture(scope="module")
def pg_run(postgres_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:  # noqa: F811
    base = tmp_path_factory.mktemp("dagster-pg")
    schema = f"dagster_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("create schema {}").format(sql.Identifier(schema)))
    raw = base / "shop-export"
    write_csv(
        raw / "commerce/orders/2025-03.csv",
        [
            {"order_id": "1", "customer_id": "x", "ordered_at": "2025-03-01", "amount": "60"},
            {"order_id": "2", "customer_id": "x", "ordered_at": "2025-03-30", "amount": "40"},
            {"order_id": "3", "customer_id": "y", "ordered_at": "2025-01-30", "amount": "500"},
        ],
    )
    home = base / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIDELINE_", "DAGSTER_HOME"))}
    env.update(NO_DBT_UNIT_TESTS)
    env["TIDELINE_TRACKING_SECRET"] = os.environ["TIDELINE_TRACKING_SECRET"]
    env["TIDELINE_DAGSTER_STORAGE"] = "postgres"
    env["TIDELINE_DAGSTER_PG_URL"] = dagster_url(postgres_dsn, schema)
    done = subprocess.run(
        [sys.executable, "-m", "tideline.cli", "run", "--raw-dir", str(raw), "--as-of", "2025-03-31"]
        + ["--home", str(home)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=1500,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-4000:]
    run_id = re.search(r"Dagster run (\S+) succeeded", done.stdout).group(1)
    return SimpleNamespace(
        dsn=postgres_dsn, schema=schema, run_id=run_id, home=home, raw=raw, env=env, stdout=done.stdout
    )


def test_the_run_and_its_events_are_in_postgres(pg_run: SimpleNamespace) -> None:
    runs = rows(
        pg_run.dsn,
        pg_run.schema,
        "select status, pipeline_name from {schema}.runs where run_id = %s",
        [pg_run.run_id],
    )
    assert runs == [("SUCCESS", "tideline_pipeline")]
    tags = dict(
        rows(
            pg_run.dsn,
            pg_run.schema,
            "select key, value from {schema}.run_tags where run_id = %s",
            [pg_run.run_id],
        )
    )
    assert tags["tideline/as_of"] == "2025-03-31"
    assert tags["tideline/warehouse"] == str(pg_run.home / "warehouse.duckdb")

    events = dict(
        rows(
            pg_run.dsn,
            pg_run.schema,
            "select dagster_event_type, count(*) from {schema}.event_logs where run_id = %s "
            "group by dagster_event_type",
            [pg_run.run_id],
        )
    )
    assert events[dg.DagsterEventType.RUN_SUCCESS.value] == 1, events
    assert events[MATERIALIZATION] >= 10, events
    materialised = {
        key
        for (key,) in rows(
            pg_run.dsn,
            pg_run.schema,
            "select asset_key from {schema}.event_logs where run_id = %s and dagster_event_type = %s",
            [pg_run.run_id, MATERIALIZATION],
        )
    }
    assert {FILES_KEY.to_string(), DIM_CUSTOMERS.to_string()} <= materialised
    # the asset index Dagster's UI reads also lives in Postgres
    latest = rows(
        pg_run.dsn,
        pg_run.schema,
        "select last_materialization_timestamp is not null from {schema}.asset_keys where asset_key = %s",
        [DIM_CUSTOMERS.to_string()],
    )
    assert latest == [(True,)]
    # the warehouse pool's limit (dagster.yaml's default_limit: 1) is held in Postgres too, so every
    # process on this instance shares it
    pools = rows(pg_run.dsn, pg_run.schema, "select concurrency_key from {schema}.concurrency_limits", [])
    assert ("warehouse",) in pools
    # and the schedule storage (schedule and sensor state, ticks)
    tables = rows(
        pg_run.dsn,
        pg_run.schema,
        "select table_name from information_schema.tables where table_schema = %s",
        [pg_run.schema],
    )
    assert {("jobs",), ("job_ticks",), ("instigators",)} <= set(tables)


def test_the_instance_folder_holds_the_postgres_config_and_no_sqlite_storage(pg_run: SimpleNamespace) -> None:
    instance_dir = pg_run.home / "dagster"
    assert (instance_dir / "dagster.yaml").read_bytes() == DAGSTER_INSTANCE_CONFIGS["postgres"].read_bytes()
    assert sorted(instance_dir.rglob("*.db")) == []  # SQLite storage would be runs.db, index.db, ...
    # the connection stays in the environment: the file names the variable, not the server
    assert "TIDELINE_DAGSTER_PG_URL" in (instance_dir / "dagster.yaml").read_text()
    assert pg_run.env["TIDELINE_DAGSTER_PG_URL"] not in (instance_dir / "dagster.yaml").read_text()


def test_another_process_sees_the_run_history(pg_run: SimpleNamespace) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            LIST_RUNS,
            str(DAGSTER_INSTANCE_CONFIGS["postgres"]),
            DIM_CUSTOMERS.to_user_string(),
        ],
        capture_output=True,
        text=True,
        env=pg_run.env,
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    (run,) = [r for r in seen["runs"] if r["run_id"] == pg_run.run_id]
    assert run["job"] == "tideline_pipeline" and run["status"] == "SUCCESS"
    assert run["tags"]["tideline/raw_dir"] == str(pg_run.raw)
    assert seen["latest_materialisation_run"] == pg_run.run_id
    assert seen["local_files"] == []
