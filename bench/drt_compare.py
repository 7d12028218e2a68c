"""drt (the open-source reverse-ETL CLI, `drt-core` on PyPI) on the sync benchmark's workload.

    python -m bench.drt_compare                    # 100,000 rows
    python -m bench.drt_compare --rows 1000000

`run_drt()` writes a minimal drt project (a DuckDB source reading the segment, a `rest_api`
destination in `body_mode: batch`, one POST per `batch_size` records, no rate limit, drt's
default retries) and runs drt's own CLI (`drt run`) on it in a subprocess, timing its wall clock
and reading its peak resident memory from the kernel's rusage for that child. So the ratio of our
engine's rows/s (bench/sync.py) to drt's is measured on the same table and the same kind of
endpoint.

Which drt: $TIDELINE_DRT_BIN when set, else the `drt` script next to this interpreter (installed
by the `bench` extra), else `drt` on PATH.

drt's config layout (drt 1.2, read from its source, drt/config/*):
  - <project>/drt_project.yml        name, profile
  - ~/.drt/profiles.yml              the DuckDB connection (drt reads it from the home directory
                                     only, so the subprocess gets HOME=<workdir>/home)
  - <project>/syncs/*.yml            one SyncConfig per file: model (SQL), destination, sync
  - <project>/target/drt/run_results.json   written by `drt run`: per-sync rows_synced/failed

Notes on the endpoint: drt's rest_api destination cannot sign requests (no HMAC), so the sink
must not require one: HttpSink() without `secret`. HttpSink counts records only in
`{"records": [...]}` (or CRM `{"inputs": [...]}`) bodies, not in a bare JSON array, so
batch_template wraps the rows as `{"records": [...]}`; rows are rendered with drt's own
`tojson_safe` filter (Jinja's `tojson` fails on DECIMAL columns; the benchmark's score is a DOUBLE).

Nothing here logs record contents: only counts, timings and drt's stderr tail on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

DRT_BIN_ENV = "TIDELINE_DRT_BIN"
SYNC_NAME = "tideline_bench_segment"
PROFILE_NAME = "tideline_bench"
COLUMNS = ("customer_id", "email", "first_name", "score")
# drt renders this once per request with `rows` = the request's records (drt/destinations/rest_api.py)
BATCH_TEMPLATE = '{"records": {{ rows | tojson_safe }}}'

_TABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}$")


def drt_command() -> list[str]:
    """The argv prefix that runs drt's CLI."""
    configured = os.environ.get(DRT_BIN_ENV)
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise RuntimeError(f"{DRT_BIN_ENV}={configured} is not a file")
        return [str(path)]
    beside = Path(sys.executable).parent / "drt"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("drt")
    if found:
        return [found]
    raise RuntimeError(
        "drt is not installed: pip install -e '.[bench]' (drt-core), or set "
        f"{DRT_BIN_ENV} to a drt executable"
    )


def write_project(
    workdir: Path,
    db_path: Path,
    table: str,
    url: str,
    *,
    batch_size: int,
    engine_batch_size: int | None = None,
) -> dict[str, Path]:
    """Write the drt project; returns the paths written."""
    home = workdir / "home"
    (home / ".drt").mkdir(parents=True, exist_ok=True)
    (workdir / "syncs").mkdir(parents=True, exist_ok=True)
    project = {"name": "tideline_bench", "version": "0.1", "profile": PROFILE_NAME}
    profiles = {PROFILE_NAME: {"type": "duckdb", "database": str(db_path)}}
    sync = {
        "name": SYNC_NAME,
        "description": "Tideline sync benchmark: segment rows to a loopback batch endpoint",
        "model": f"select {', '.join(COLUMNS)} from {table}",
        "destination": {
            "type": "rest_api",
            "url": url,
            "method": "POST",
            "headers": {"Content-Type": "application/json"},
            "body_mode": "batch",
            "batch_template": BATCH_TEMPLATE,
            # records per HTTP request
            "max_records_per_request": batch_size,
        },
        "sync": {
            "mode": "full",
            # records per engine batch = per destination.load() call (drt opens one
            # httpx.Client per load(), so this is also one connection per batch)
            "batch_size": engine_batch_size or batch_size,
            # drt's default is 10 requests/s; 0 turns pacing off
            "rate_limit": {"requests_per_second": 0},
            "on_error": "fail",
            # retry: drt's default (3 attempts, 1 s initial backoff, 429/5xx)
        },
    }
    paths = {
        "project": workdir / "drt_project.yml",
        "profiles": home / ".drt" / "profiles.yml",
        "sync": workdir / "syncs" / f"{SYNC_NAME}.yml",
    }
    paths["project"].write_text(yaml.safe_dump(project, sort_keys=False))
    paths["profiles"].write_text(yaml.safe_dump(profiles, sort_keys=False))
    paths["sync"].write_text(yaml.safe_dump(sync, sort_keys=False, width=1000))
    return paths


def _tail(path: Path, chars: int = 2000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-chars:].strip()


def _parse_results(workdir: Path, stdout_path: Path) -> dict[str, Any] | None:
    """drt's run result: target/drt/run_results.json, else the --output json document on stdout."""
    artifact = workdir / "target" / "drt" / "run_results.json"
    if artifact.exists():
        try:
            data = json.loads(artifact.read_text())
            inv = data.get("invocation", {})
            return {
                "results": data.get("results", []),
                "total_duration_seconds": inv.get("duration_seconds"),
                "drt_version": inv.get("drt_version"),
            }
        except (OSError, ValueError):
            pass
    text = stdout_path.read_text(errors="replace") if stdout_path.exists() else ""
    start = text.find("{")
    if start < 0:
        return None
    try:
        data = json.loads(text[start:])
    except ValueError:
        return None
    return {
        "results": data.get("syncs", []),
        "total_duration_seconds": data.get("total_duration_seconds"),
        "drt_version": None,
    }


def _stdout_error(stdout_path: Path) -> str:
    """error_stage/error_type/error of the sync from drt's --output json stdout, if any."""
    try:
        text = stdout_path.read_text(errors="replace")
        data = json.loads(text[text.index("{") :])
    except (OSError, ValueError):
        return ""
    for entry in data.get("syncs", []):
        if entry.get("name") == SYNC_NAME and entry.get("error"):
            return f"{entry.get('error_stage')}/{entry.get('error_type')}: {str(entry['error'])[:500]}"
    return ""


def _drt_version(cmd: list[str], env: dict[str, str]) -> str | None:
    try:
        out = subprocess.run([*cmd, "--version"], env=env, capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"drt version (\S+)", out)
    return match.group(1) if match else None


def run_drt(
    db_path: str | Path,
    table: str,
    url: str,
    *,
    batch_size: int = 1000,
    workdir: Path,
    engine_batch_size: int | None = None,
    timeout: float | None = None,
) -> dict:
    """Run `drt run` on `select customer_id, email, first_name, score from <table>` in the DuckDB
    file `db_path`, POSTing `{"records": [...]}` bodies of `batch_size` records to `url`.

    No process may hold the DuckDB file open while this runs (drt opens it read-write).
    Returns {"seconds", "rows", "rows_per_second", "peak_mb", "drt_version", ...}; raises
    RuntimeError (with drt's stderr tail) when drt exits non-zero.
    """
    if not _TABLE_RE.match(table):
        raise ValueError(f"not a plain (schema.)table name: {table!r}")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    db_path = Path(db_path).resolve()
    if not db_path.is_file():
        raise FileNotFoundError(db_path)
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    write_project(workdir, db_path, table, url, batch_size=batch_size, engine_batch_size=engine_batch_size)

    cmd = drt_command()
    env = {
        **os.environ,
        "HOME": str(workdir / "home"),  # drt reads ~/.drt/profiles.yml
        "DO_NOT_TRACK": "1",  # drt's telemetry is opt-in anyway; make sure
        "DRT_TELEMETRY": "0",
        "NO_COLOR": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DRT_PROFILE", None)  # would override drt_project.yml's profile
    stdout_path = workdir / "drt.stdout"
    stderr_path = workdir / "drt.stderr"
    argv = [*cmd, "run", "--select", SYNC_NAME, "--output", "json"]
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        timer = threading.Timer(timeout, proc.kill) if timeout else None
        if timer:
            timer.start()
        try:
            # wait4: this child's own rusage (ru_maxrss in KiB on Linux), not all children's
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            if timer:
                timer.cancel()
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)

    parsed = _parse_results(workdir, stdout_path)
    entry = None
    if parsed:
        entry = next((r for r in parsed["results"] if r.get("name") == SYNC_NAME), None)
    rows = int(entry.get("rows_synced") or 0) if entry else 0
    failed = int(entry.get("rows_failed") or 0) if entry else 0
    if proc.returncode != 0:
        summary = (
            f"status={entry.get('status')} rows_synced={rows} rows_failed={failed}"
            if entry
            else "no run result"
        )
        # With --output json drt reports a sync's exception on stdout (run_results.json drops it);
        # per-row HTTP errors are not printed at all outside --verbose text mode.
        detail = _stdout_error(stdout_path)
        raise RuntimeError(
            f"drt run exited {proc.returncode} after {seconds:.1f}s ({summary})"
            + (f"; {detail}" if detail else "")
            + f"; stderr tail:\n{_tail(stderr_path) or '(empty)'}"
        )
    if entry is None:
        raise RuntimeError(f"drt run exited 0 but reported no result for {SYNC_NAME}")
    version = (parsed or {}).get("drt_version") or _drt_version(cmd, env)
    result: dict[str, Any] = {
        "seconds": round(seconds, 2),
        "rows": rows,
        "rows_per_second": round(rows / seconds) if seconds > 0 else None,
        "peak_mb": round(usage.ru_maxrss / 1024, 1),
        "drt_version": version,
        "rows_extracted": int(entry.get("rows_extracted") or 0),
        "rows_failed": failed,
        "status": entry.get("status"),
        # drt's own timing of the run (excludes interpreter start-up and imports)
        "drt_reported_seconds": (parsed or {}).get("total_duration_seconds"),
        "batch_size": batch_size,
        "engine_batch_size": engine_batch_size or batch_size,
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
    }
    if failed:
        result["failures"] = {"rows_failed": failed, "rows_skipped": entry.get("rows_skipped")}
    return result


def make_segment(db_path: Path, rows: int) -> None:
    """The sync benchmark's segment table (as bench/sync.py builds it)."""
    import duckdb

    con = duckdb.connect(str(db_path))
    try:
        con.execute("create schema if not exists marts")
        con.execute(
            f"""create or replace table marts.segment as
                select 'c' || i as customer_id, 'c' || i || '@example.com' as email,
                       'First' || (i % 1000) as first_name, cast((i % 97) * 1.5 as double) as score
                from range({int(rows)}) t(i)"""
        )
    finally:
        con.close()


def main(argv: list[str] | None = None) -> int:
    from tideline.demo.sinks.http_sink import HttpSink

    parser = argparse.ArgumentParser(description="drt on the sync benchmark's segment, to a loopback sink.")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument(
        "--engine-batch-size",
        type=int,
        default=None,
        help="drt's sync.batch_size (rows per destination.load() call); default: --batch-size",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="tideline-drt-bench-"))
    try:
        db_path = workdir / "w.duckdb"
        make_segment(db_path, args.rows)
        # No secret: drt's rest_api destination cannot HMAC-sign, and with a secret the sink
        # answers 401 to every unsigned webhook-shaped body.
        with HttpSink(lean=True) as sink:
            out = run_drt(
                db_path,
                "marts.segment",
                sink.url("/batch"),
                batch_size=args.batch_size,
                workdir=workdir / "drt",
                engine_batch_size=args.engine_batch_size,
            )
            out["sink_records"] = sink.count_records()
            out["sink_requests"] = sink.stats()["processed"]
        out = {
            "benchmark": "drt",
            "rows_requested": args.rows,
            "machine": f"{platform.machine()} {platform.python_version()} cpus={len(os.sched_getaffinity(0))}",
            **out,
        }
        print(json.dumps(out, indent=2))
        if out["sink_records"] != args.rows or out["rows"] != args.rows:
            print("mismatch: drt's rows, the sink's records and the table's rows differ", file=sys.stderr)
            return 1
        return 0
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
