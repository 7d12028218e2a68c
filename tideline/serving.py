"""The BI copy: after every successful run, a copy of the warehouse published for BI tools.

(The Dagster asset that calls `publish_bi_copy` last in every run is orchestration/serving.py.)

DuckDB allows one writer and, while it writes, no other process: a BI tool holding the
warehouse open would stop the pipeline, and the pipeline's dbt builds would break the BI
tool's queries. So BI tools open a copy instead. The last asset of every pipeline run
(`serving/bi_warehouse`, downstream of every other asset, so it runs only when they all
succeeded) checkpoints the warehouse, copies the file to a temporary name next to the copy and
renames it over the copy (`os.replace`, atomic). A BI tool that holds the old copy open, even
read-write, keeps reading that snapshot and never blocks the pipeline; reconnecting shows the
new run. Anything a BI tool writes into the copy is discarded at the next publication.
"""

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tideline.warehouse import connect_waiting


@dataclass(frozen=True)
class Published:
    path: Path
    bytes: int
    seconds: float


def publish_bi_copy(
    warehouse: Path | str,
    target: Path | str,
    wait_seconds: float = 0.0,
    on_wait: Callable[[str], None] | None = None,
) -> Published:
    """Checkpoint `warehouse` and atomically replace `target` with a copy of it.

    The copy is taken while this process holds the warehouse's write lock (no one can change it
    underneath), written next to the target and fsynced, then renamed over the target."""
    started = time.monotonic()
    source, target = Path(warehouse), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    con = connect_waiting(source, wait_seconds=wait_seconds, on_wait=on_wait, bi_path=str(target))
    try:
        con.execute("checkpoint")  # everything in the WAL goes into the file being copied
        shutil.copyfile(source, partial)
    finally:
        con.close()
    try:
        with partial.open("rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    # a write-ahead log left by a BI tool that wrote into the previous copy belongs to that copy
    Path(f"{target}.wal").unlink(missing_ok=True)
    return Published(path=target, bytes=target.stat().st_size, seconds=time.monotonic() - started)
