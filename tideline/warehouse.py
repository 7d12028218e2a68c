"""Opening the DuckDB warehouse file when another process may hold it.

DuckDB allows one writer and, while it writes, no other process at all. When another process
(a BI tool, a notebook) holds the warehouse file, a run waits for it up to `lock_wait_seconds`
(TIDELINE_LOCK_WAIT_SECONDS), saying once which process holds it, and then fails with one
sentence naming the process and what to do (`WarehouseLocked`). Used by the CLI before a run, by
the BI copy's publication and by the Dagster warehouse resource (orchestration/resources.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

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
