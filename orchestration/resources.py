"""Dagster resources: the warehouse connection, the pipeline's run settings and where run logs go.

DuckDB allows one writer and, while it writes, no other process at all. When another process
(a BI tool, a notebook) holds the warehouse file, a run waits for it up to `lock_wait_seconds`
(TIDELINE_LOCK_WAIT_SECONDS), saying once which process holds it, and then fails with one
sentence naming the process and what to do. Sensors never wait (they skip the tick instead).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import PrivateAttr

# DuckDB: 'Could not set lock on file "<path>": Conflicting lock is held in <program> (PID <n>)...'
_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.*?) \(PID (?P<pid>\d+)\)")


class WarehouseLocked(duckdb.IOException):
    """Another process holds the DuckDB warehouse file, and kept it past the configured wait (an
    IOException, as DuckDB's own lock error is, so callers that skip on it keep doing so)."""

    def __init__(self, path: str, pid: int, program: str, waited: float, bi_path: str = ""):
        self.path, self.pid, self.program, self.waited = path, pid, program, waited
        bi = f" (BI tools should open {bi_path}, the copy after 'Open in BI:')" if bi_path else ""
        super().__init__(
            f"The warehouse {path} is locked by another process, PID {pid} ({Path(program).name}), "
            f"and was still locked after {waited:.0f}s: close that program's connection to it{bi} "
            f"and run again, or wait longer with TIDELINE_LOCK_WAIT_SECONDS."
        )


def lock_holder(exc: BaseException) -> tuple[int, str] | None:
    """(pid, program) of the process holding a DuckDB file lock, from DuckDB's error; None otherwise."""
    match = _LOCK_HOLDER.search(str(exc))
    return (int(match["pid"]), match["program"]) if match else None


def connect_waiting(
    path: str | Path,
    read_only: bool = False,
    wait_seconds: float = 0.0,
    on_wait: Callable[[str], None] | None = None,
    bi_path: str = "",
) -> duckdb.DuckDBPyConnection:
    """duckdb.connect, waiting up to `wait_seconds` while another process holds the file's lock
    (`on_wait` hears once who holds it); then WarehouseLocked. Other errors are raised as they are."""
    deadline = time.monotonic() + max(wait_seconds, 0.0)
    started, told = time.monotonic(), False
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            holder = lock_holder(exc)
            if holder is None:
                raise
            pid, program = holder
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                waited = time.monotonic() - started
                # DuckDB's message says no more than ours (program, PID): keep the error one sentence
                raise WarehouseLocked(str(path), pid, program, waited, bi_path) from None
            if not told and on_wait is not None:
                on_wait(
                    f"the warehouse {path} is locked by another process, PID {pid} ({Path(program).name}); "
                    f"waiting up to {wait_seconds:.0f}s for it to close (TIDELINE_LOCK_WAIT_SECONDS)"
                )
                told = True
            time.sleep(min(0.5, remaining))


from activation.warehouse import DuckDBLimits


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file. DuckDB allows one writer at a time: every asset that
    writes through this resource is in the `warehouse` concurrency pool. Inside a run, a
    connection waits up to `lock_wait_seconds` for another process to let go of the file."""

    path: str
    lock_wait_seconds: float = 0.0
    bi_path: str = ""  # named in the lock message: where BI tools should point instead
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
            yield con
        finally:
            con.close()

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
    max_training_rows: int = 400_000
    at_risk_threshold: float = 0.5  # churn probability from which a customer is on the at-risk list
    drift_psi_warn: float = 0.2  # warn when the churn-score distribution moves more than this (PSI)
    seed: int = 42


class ActivationSettings(dg.ConfigurableResource):
    """Where the activation config is ('' = TIDELINE_ACTIVATION_CONFIG or config/activation.yml),
    and DuckDB's limits while a sync runs. Unset ('' / 0), the limits come from
    TIDELINE_DUCKDB_MEMORY_LIMIT, TIDELINE_DUCKDB_THREADS and TIDELINE_DUCKDB_TEMP_DIR, else the
    defaults in activation/warehouse.py (128MB, 2 threads, `<warehouse>.tmp`); DuckDB spills to
    the temp directory beyond the memory limit, and a sync that still runs out names the setting."""

    config_path: str = ""
    workers: int = 4  # concurrent batches per sync (they share the destination's rate limit)
    memory_limit: str = ""  # DuckDB size, e.g. 256MB or 1GB
    threads: int = 0
    temp_directory: str = ""

    def duckdb_limits(self) -> DuckDBLimits:
        return DuckDBLimits.resolve(self.memory_limit, self.threads, self.temp_directory)
