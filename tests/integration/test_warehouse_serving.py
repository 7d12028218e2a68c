"""BI tools and the pipeline share the warehouse without blocking each other (issue 10, part 3).

A real second process holds DuckDB files here, as a BI tool or notebook would."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest

from orchestration.resources import WarehouseResource
from tideline.serving import publish_bi_copy
from tideline.warehouse import WarehouseLocked, connect_waiting

# a BI tool that opens the file read-write, answers "count" with the customer count on the
# connection it holds, "reconnect" by reopening the path first, and "close" by letting go
HOLDER = """
import sys, duckdb
path = sys.argv[1]
con = duckdb.connect(path)
print("ready", flush=True)
for line in sys.stdin:
    command = line.strip()
    if command == "reconnect":
        con.close()
        con = duckdb.connect(path)
    if command in ("count", "reconnect"):
        print(con.execute("select count(*) from customers").fetchone()[0], flush=True)
    if command == "close":
        con.close()
        print("closed", flush=True)
"""


@contextmanager
def holder(path: Path) -> Iterator[subprocess.Popen]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline().strip()
        assert line == "ready", line + process.stderr.read()
        yield process
    finally:
        process.kill()
        process.wait(timeout=10)


def ask(process: subprocess.Popen, command: str) -> str:
    process.stdin.write(command + "\n")
    process.stdin.flush()
    return process.stdout.readline().strip()


def _warehouse(path: Path, customers: int) -> Path:
    con = duckdb.connect(str(path))
    con.execute("create or replace table customers as select range as id from range(?)", [customers])
    con.close()
    return path


def test_a_bi_tool_holding_the_copy_read_write_never_blocks_publishing(tmp_path: Path) -> None:
    warehouse = _warehouse(tmp_path / "warehouse.duckdb", 2)
    bi = tmp_path / "bi" / "warehouse.duckdb"
    publish_bi_copy(warehouse, bi)
    with holder(bi) as bi_tool:
        assert ask(bi_tool, "count") == "2"
        _warehouse(warehouse, 3)  # the next run changes the warehouse ...
        published = publish_bi_copy(warehouse, bi)  # ... and publishes while the BI tool holds the copy
        assert published.path == bi and published.bytes > 0
        assert ask(bi_tool, "count") == "2"  # the open connection keeps reading its snapshot
        assert ask(bi_tool, "reconnect") == "3"  # a reconnect sees the new run
    assert sorted(p.name for p in bi.parent.iterdir()) == ["warehouse.duckdb"]  # no partial copy left


def test_the_copy_is_a_consistent_checkpointed_database(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(warehouse))
    con.execute("create table customers as select range as id from range(1000)")
    con.execute("insert into customers select range + 1000 from range(500)")  # still in the WAL
    con.close()
    copy = publish_bi_copy(warehouse, tmp_path / "bi" / "copy.duckdb").path
    check = duckdb.connect(str(copy), read_only=True)
    assert check.execute("select count(*), max(id) from customers").fetchone() == (1500, 1499)
    check.close()


def test_a_locked_warehouse_names_the_process_and_gives_up_after_the_wait(tmp_path: Path) -> None:
    warehouse = _warehouse(tmp_path / "warehouse.duckdb", 1)
    heard: list[str] = []
    with holder(warehouse) as other:
        started = time.monotonic()
        with pytest.raises(WarehouseLocked) as raised:
            connect_waiting(
                warehouse, wait_seconds=1.0, on_wait=heard.append, bi_path="/x/bi/warehouse.duckdb"
            )
        waited = time.monotonic() - started
        message = str(raised.value)
        pid = other.pid
    assert raised.value.pid == pid
    assert f"PID {pid}" in message and "/x/bi/warehouse.duckdb" in message and str(warehouse) in message
    assert message.count(". ") == 0 and message.endswith(".")  # one sentence
    assert waited >= 1.0
    assert len(heard) == 1 and f"PID {pid}" in heard[0]  # said once while waiting, not every poll


def test_a_run_waits_for_the_lock_to_go_and_then_proceeds(tmp_path: Path) -> None:
    warehouse = _warehouse(tmp_path / "warehouse.duckdb", 4)
    with holder(warehouse) as other:
        closer = subprocess.Popen(["sh", "-c", "sleep 1.5"])  # let the wait start first
        releaser = _release_later(other, closer)
        con = connect_waiting(warehouse, wait_seconds=30.0)
        releaser.join()
    assert con.execute("select count(*) from customers").fetchone()[0] == 4
    con.close()


def _release_later(process: subprocess.Popen, delay: subprocess.Popen):
    import threading

    def release() -> None:
        delay.wait()
        ask(process, "close")

    thread = threading.Thread(target=release)
    thread.start()
    return thread


def test_the_resource_waits_in_a_run_but_not_in_a_sensor_tick(tmp_path: Path) -> None:
    """A sensor tick must not hang on a lock (it skips the tick); a run's step waits."""
    import dagster as dg

    warehouse = _warehouse(tmp_path / "warehouse.duckdb", 1)
    resource = WarehouseResource(path=str(warehouse), lock_wait_seconds=1.0)
    with holder(warehouse), dg.build_init_resource_context() as context:
        resource.setup_for_execution(context)  # no run: like a sensor's resources
        started = time.monotonic()
        with pytest.raises(duckdb.IOException) as raised, resource.connect(read_only=True):
            pass
        assert time.monotonic() - started < 1.0
        assert "is locked by another process" in str(raised.value)

    @dg.asset
    def reads(warehouse: WarehouseResource) -> None:
        with warehouse.connect(read_only=True):
            pass

    with holder(warehouse):
        started = time.monotonic()
        result = dg.materialize([reads], resources={"warehouse": resource}, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "is locked by another process" in str(failure.event_specific_data.error)
    assert time.monotonic() - started >= 1.0
