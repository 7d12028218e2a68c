"""`tideline run` end to end, as a subprocess: warehouses kept apart, BI reading while the pipeline
writes, runs tagged and listed under their job, and what the console shows (issue 10, parts 2, 3, 5).

One module fixture runs the CLI three times in one home: warehouse A (the home's default) on
demo data with enough history to train the models, then warehouse B elsewhere on three orders,
twice, while a second process holds B's BI copy open read-write.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import duckdb
import pytest

from tests.helpers import NO_DBT_UNIT_TESTS, write_csv
from tideline.demo.data import generate_demo_data
from tideline.settings import REPO_ROOT, Settings

pytestmark = pytest.mark.slow

REPOSITORY_LABEL = "__repository__@orchestration.definitions"  # what the UI's job page filters on
HOLDER = """
import sys, duckdb
path = sys.argv[1]
con = duckdb.connect(path)  # read-write, as some BI tools open files
count = lambda: con.execute("select count(*) from marts.dim_customers").fetchone()[0]
print(count(), flush=True)
sys.stdin.readline()
print(count(), flush=True)
con.close()
con = duckdb.connect(path)
print(count(), flush=True)
"""


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without Tideline's and Dagster's settings, and without dbt's unit tests
    (tests/helpers.py: they pass or fail the same on any data)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIDELINE_", "DAGSTER_HOME", "NO_COLOR"))}
    return {**env, **NO_DBT_UNIT_TESTS, **extra}


def tideline(
    *args: str | Path, env: dict[str, str] | None = None, timeout: int = 1500
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tideline.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env or clean_env(),
        cwd=REPO_ROOT,
        timeout=timeout,
    )


def ok(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-4000:]
    return done


def open_in_bi(stdout: str) -> Path:
    last = stdout.rstrip().splitlines()[-1]
    assert last.startswith("Open in BI: "), last
    return Path(last.removeprefix("Open in BI: ").split("  (")[0])


def files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


def runs(instance_dir: Path) -> list[dg.DagsterRun]:
    with dg.DagsterInstance.from_config(str(instance_dir)) as instance:
        return list(instance.get_runs())


@pytest.fixture(scope="module")
def apart(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    base = tmp_path_factory.mktemp("apart")
    home = base / "home"
    demo = generate_demo_data(base / "demo-raw", customers=600, seed=7)
    a = Settings(home, home / "warehouse.duckdb", demo.out_dir, str(demo.end_date))
    a_run = ok(tideline("run", "--raw-dir", a.raw_dir, "--as-of", a.as_of, "--home", home))
    a_files = {"outbox": files(a.outbox_dir), "reports": files(a.reports_dir), "models": files(a.models_dir)}

    b_raw = base / "shop-export"
    write_csv(
        b_raw / "commerce/orders/2025-03.csv",
        [
            {"order_id": "1", "customer_id": "x", "ordered_at": "2025-03-01", "amount": "60"},
            {"order_id": "2", "customer_id": "x", "ordered_at": "2025-03-30", "amount": "40"},
            {"order_id": "3", "customer_id": "y", "ordered_at": "2025-01-30", "amount": "500"},
        ],
    )
    b = Settings(home, base / "elsewhere" / "shop.duckdb", b_raw, "2025-03-31")
    b_args = ("run", "--raw-dir", b_raw, "--as-of", b.as_of, "--warehouse", b.warehouse, "--home", home)
    b_first = ok(tideline(*b_args))
    bi = open_in_bi(b_first.stdout)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(bi)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        held_before = int(holder.stdout.readline())
        # new data arrives; the next run goes on while the BI tool holds its connection
        write_csv(
            b_raw / "commerce/orders/2025-04.csv",
            [{"order_id": "4", "customer_id": "w", "ordered_at": "2025-03-31", "amount": "75"}],
        )
        b_second = tideline(*b_args)
        holder.stdin.write("\n")
        holder.stdin.flush()
        held_after, reconnected = int(holder.stdout.readline()), int(holder.stdout.readline())
    finally:
        holder.kill()
        holder.wait(timeout=10)
    return SimpleNamespace(
        home=home,
        a=a,
        b=b,
        a_run=a_run,
        a_files=a_files,
        b_first=b_first,
        b_second=b_second,
        bi=bi,
        held=(held_before, held_after, reconnected),
    )


def test_a_bi_connection_held_open_does_not_stop_the_next_run(apart) -> None:
    ok(apart.b_second)
    assert apart.bi == apart.b.bi_path and open_in_bi(apart.b_second.stdout) == apart.bi
    assert "Waiting:" not in apart.b_second.stdout  # the pipeline never waited for the BI tool
    held_before, held_after, reconnected = apart.held
    assert (held_before, held_after) == (2, 2)  # the held connection keeps its consistent snapshot
    assert reconnected == 3  # reconnecting shows the new run's data


def test_the_second_warehouse_reads_none_of_the_first_ones_state(apart) -> None:
    a, b = apart.a, apart.b
    assert a.state_dir == apart.home and b.state_dir.parent == apart.home / "warehouses"
    # A trained models on its demo data and scored its customers with them
    assert any(name.startswith("churn/") for name in apart.a_files["models"])
    with duckdb.connect(str(a.warehouse), read_only=True) as con:
        assert con.execute("select count(*) from ml.customer_scores").fetchone()[0] > 100
    # B's three customers are too few to train: nothing scored them, A's models least of all
    with duckdb.connect(str(b.warehouse), read_only=True) as con:
        assert con.execute("select count(*) from ml.customer_scores").fetchone()[0] == 0
        assert con.execute("select count(*) from marts.dim_customers").fetchone()[0] == 3
    assert not any(name.split("/")[0] in ("churn", "propensity", "clv") for name in files(b.models_dir))
    # B wrote its own report and outbox, and left A's untouched
    assert (b.reports_dir / "campaign_report.html").exists()
    assert f"Campaign report: {b.reports_dir / 'campaign_report.html'}" in apart.b_second.stdout
    assert b.outbox_dir.exists() and b.outbox_dir != a.outbox_dir
    assert files(a.outbox_dir) == apart.a_files["outbox"]
    assert files(a.reports_dir) == apart.a_files["reports"]
    assert files(a.models_dir) == apart.a_files["models"]
    # each warehouse's Dagster instance holds its own runs only
    a_runs, b_runs = runs(a.instance_dir), runs(b.instance_dir)
    assert len(a_runs) == 1 and len(b_runs) == 2
    assert {r.tags["tideline/warehouse"] for r in a_runs} == {str(a.warehouse)}
    assert {r.tags["tideline/warehouse"] for r in b_runs} == {str(b.warehouse)}


def test_runs_are_tagged_and_recorded_under_their_job(apart) -> None:
    (a_run,) = runs(apart.a.instance_dir)
    assert a_run.tags["tideline/raw_dir"] == str(apart.a.raw_dir)
    assert a_run.tags["tideline/as_of"] == apart.a.as_of
    for run in runs(apart.b.instance_dir):
        assert run.tags["tideline/raw_dir"] == str(apart.b.raw_dir)
        assert run.tags["tideline/as_of"] == "2025-03-31"
        assert run.job_name == "tideline_pipeline" and run.is_success
        # the origin of the code location `make ui` / `tideline ui` serve: the job page lists the run
        assert run.remote_job_origin.repository_origin.get_label() == REPOSITORY_LABEL
        assert run.tags_for_storage()[".dagster/repository"] == REPOSITORY_LABEL


def test_the_console_shows_one_line_per_step_and_dbt_goes_to_the_log(apart) -> None:
    out = apart.a_run.stdout
    assert "\x1b" not in out and "\x1b" not in apart.a_run.stderr  # not a terminal: no escape codes
    assert "START sql table model" not in out and "Completed successfully" not in out  # dbt's lines
    log = Path(re.search(r"^  run \S+, log (\S+)$", out, re.M).group(1))
    assert log.parent == apart.a.logs_dir and log.exists()
    text = log.read_text()
    assert "START sql table model" in text and "Done. PASS=" in text and "\x1b" not in text
    (run,) = runs(apart.a.instance_dir)
    with dg.DagsterInstance.from_config(str(apart.a.instance_dir)) as instance:
        steps = {
            r.event_log_entry.step_key
            for r in instance.get_records_for_run(
                run.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS
            ).records
        }
    step_lines = [line for line in out.splitlines() if line.startswith(("  ✓ ", "  ✗ "))]
    assert len(step_lines) == len(steps) > 15  # one line per step
    assert any(line.startswith("  ✓ dbt build ") and "checks passed" in line for line in step_lines)
    assert any(line.startswith("  ✓ landing zone ") and " files, " in line for line in step_lines)
    assert any(line.startswith("  … dbt build: ") for line in out.splitlines())  # progress of the long step
    assert len(out.splitlines()) < 150  # was about 1,200


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _graphql(port: int, query: str, variables: dict) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["data"]


JOB_RUNS = """
query ($filter: RunsFilter) {
  runsOrError(filter: $filter) { ... on Runs { results { runId jobName tags { key value } } } }
}
"""
LOCATIONS = """
{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }
"""


def test_the_ui_lists_cli_runs_under_their_job(apart) -> None:
    """The Dagster webserver on loopback, on B's instance, asked what its job page asks."""
    b, port = apart.b, _free_port()
    env = clean_env(
        DAGSTER_HOME=str(b.instance_dir),
        TIDELINE_HOME=str(b.home),
        TIDELINE_WAREHOUSE=str(b.warehouse),
        TIDELINE_RAW_DIR=str(b.raw_dir),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    command = [str(Path(sys.executable).with_name("dagster-webserver")), "-m", "orchestration.definitions"]
    server = subprocess.Popen(
        [*command, "-h", "127.0.0.1", "-p", str(port)],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        locations = None
        while time.monotonic() < deadline:
            try:
                locations = _graphql(port, LOCATIONS, {})["repositoriesOrError"]["nodes"]
                if locations:
                    break
            except OSError:
                pass
            assert server.poll() is None, "the webserver stopped"
            time.sleep(2)
        assert {"name": "__repository__", "location": {"name": "orchestration.definitions"}} in locations
        job_filter = {
            "pipelineName": "tideline_pipeline",
            "tags": [{"key": ".dagster/repository", "value": REPOSITORY_LABEL}],
        }
        listed = _graphql(port, JOB_RUNS, {"filter": job_filter})["runsOrError"]["results"]
    finally:  # the webserver and the code server it started: one process group
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
    assert {r["runId"] for r in listed} == {r.run_id for r in runs(b.instance_dir)}
    for run in listed:
        tags = {t["key"]: t["value"] for t in run["tags"]}
        assert tags["tideline/warehouse"] == str(b.warehouse) and tags["tideline/as_of"] == "2025-03-31"


def test_summary_reads_the_bi_copy_while_another_process_holds_the_warehouse(apart) -> None:
    b = apart.b
    hold = "import sys, duckdb, time; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); time.sleep(120)"
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(b.warehouse)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        done = ok(tideline("summary", "--warehouse", b.warehouse, "--home", apart.home, timeout=300))
    finally:
        holder.kill()
        holder.wait(timeout=10)
    assert f"(the warehouse is in use by PID {holder.pid}: this is the summary of the BI copy" in done.stdout
    assert "Customers: 3 (3 buyers" in done.stdout  # the last complete run, read from the copy
    assert f"Warehouse: {b.warehouse}  " in done.stdout
    assert open_in_bi(done.stdout) == b.bi_path
