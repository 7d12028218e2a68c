"""Sync benchmark: a large segment through the real engine to a loopback HTTP batch endpoint,
and the same table to the same endpoint with drt (an open-source reverse-ETL tool).

    python -m bench.sync                      # 1,000,000 rows
    python -m bench.sync --rows 200000

The segment is `customer_id, email, first_name, score` (score a DOUBLE). The endpoint is
tideline.demo.sinks.http_sink in its own process, lean (counts records, keeps no bodies), with
no signature check so drt (which cannot sign) and Tideline face the same server; it answers
each batch with per-record results. Measured, each in its own process so the peak resident
memory is the sync's own:

  - Tideline, mode upsert, webhook destination (HMAC-signed), 1,000 records per request,
    ledger and policies on, no rate limit: a first full sync of every row, then a rerun
    with 1% of the rows changed (only those are sent). DuckDB's memory_limit for the sync
    connection is --memory-limit (default 128MB, as ActivationConfigResource.memory_limit in the pipeline).
  - drt (`drt run`, rest_api destination in batch mode, 1,000 records per request, no rate
    limit; bench/drt_compare.py) with its default 1,000 rows per load() call and with
    10,000 (its faster setting here); the ratio is against the faster of the two.

Results are appended to bench/results/sync.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "sync.json"
ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def sink_process() -> Iterator[str]:
    """The loopback batch endpoint in its own process; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tideline.demo.sinks.http_sink", "--lean", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if "listening on" not in line:
            raise RuntimeError(f"the HTTP sink did not start: {line!r}")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def sink_records(base_url: str) -> int:
    with urllib.request.urlopen(f"{base_url}/_sink/stats", timeout=10) as response:
        return int(json.loads(response.read())["records"])


def _child(db: str, url: str, workers: int, memory_limit: str) -> dict:
    """Tideline's two syncs, in this (child) process."""
    import duckdb

    from activation.config import PolicyConfig, SyncBinding
    from activation.destinations.webhook import WebhookDestination
    from activation.engine import SyncEngine

    con = duckdb.connect(db)
    con.execute(f"set memory_limit = '{memory_limit}'")
    rows = con.execute("select count(*) from marts.segment").fetchone()[0]
    binding = SyncBinding(
        segment="segment",
        relation="marts.segment",
        destination="crm_batch",
        mode="upsert",
        channel=None,
        fields={"email": "email", "first_name": "first_name", "score": "score"},
        campaign="bench",
    )
    destination = WebhookDestination.from_config(
        "crm_batch",
        {"url": url, "secret_env": "BENCH_WEBHOOK_SECRET", "max_batch_size": 1000},
        {"BENCH_WEBHOOK_SECRET": "bench"},
    )
    out: dict = {}
    started = time.perf_counter()
    first = SyncEngine(con, destination, binding, PolicyConfig(), workers=workers).run()
    full = time.perf_counter() - started
    out["full_sync"] = {"seconds": round(full, 2), "sent": first.sent, "rows_per_second": round(rows / full)}
    con.execute("update marts.segment set score = score + 1 where hash(customer_id) % 100 = 0")
    started = time.perf_counter()
    second = SyncEngine(con, destination, binding, PolicyConfig(), workers=workers).run()
    rerun = time.perf_counter() - started
    out["rerun_1pct_changed"] = {
        "seconds": round(rerun, 3),
        "changed": second.counts["changed"],
        "sent": second.sent,
        "speedup_vs_full": round(full / rerun, 1),
    }
    out["ledger_rows"] = con.execute("select count(*) from tideline_sync.delivery_log").fetchone()[0]
    destination.close()
    con.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["peak_mb"] = round(usage.ru_maxrss / 1024, 1)
    out["cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 2)
    return out


def _run_child(db: Path, url: str, workers: int, memory_limit: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "bench.sync", "--child", str(db), "--url", url]
        + ["--workers", str(workers), "--memory-limit", memory_limit],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the Tideline sync failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run(rows: int, workers: int = 4, memory_limit: str = "128MB") -> dict:
    from bench.drt_compare import make_segment, run_drt

    workdir = Path(tempfile.mkdtemp(prefix="tideline-sync-bench-"))
    db = workdir / "w.duckdb"
    make_segment(db, rows)
    out: dict = {"rows": rows, "workers": workers, "batch_size": 1000, "memory_limit": memory_limit}
    with sink_process() as base:
        url = f"{base}/batch"
        out["tideline"] = _run_child(db, url, workers, memory_limit)
        sent = out["tideline"]["full_sync"]["sent"] + out["tideline"]["rerun_1pct_changed"]["sent"]
        out["tideline"]["sink_records"] = sink_records(base)
        if out["tideline"]["sink_records"] != sent:
            raise RuntimeError(
                f"the sink counted {out['tideline']['sink_records']} records, Tideline sent {sent}"
            )
        drt_runs = []
        for engine_batch in (1000, 10_000):
            before = sink_records(base)
            result = run_drt(
                db,
                "marts.segment",
                url,
                batch_size=1000,
                engine_batch_size=engine_batch,
                workdir=workdir / f"drt{engine_batch}",
            )
            result["sink_records"] = sink_records(base) - before
            if result["sink_records"] != rows or result["rows"] != rows:
                raise RuntimeError(
                    f"drt synced {result['rows']} rows, the sink counted {result['sink_records']}"
                )
            drt_runs.append(result)
    out["drt"] = drt_runs
    best = max(drt_runs, key=lambda r: r["rows_per_second"])
    out["ratio_vs_drt"] = round(out["tideline"]["full_sync"]["rows_per_second"] / best["rows_per_second"], 2)
    out["ratio_vs_drt_default"] = round(
        out["tideline"]["full_sync"]["rows_per_second"] / drt_runs[0]["rows_per_second"], 2
    )
    return out


def _commit() -> str:
    """The code measured: the git commit, marked -dirty when the tree has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        dirty = subprocess.run(  # results files do not make the measured code dirty
            ["git", "status", "--porcelain", "--", ".", ":!bench/results"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
    except OSError:
        return "unknown"
    return (
        head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
        if head.returncode == 0
        else "unknown"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--memory-limit", default="128MB", help="DuckDB memory_limit for the sync connection")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--url", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args.url, args.workers, args.memory_limit)))
        return 0
    entry = {
        "benchmark": "sync",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "machine": f"{platform.machine()} {platform.python_version()} cpus={len(os.sched_getaffinity(0))}",
        **run(args.rows, args.workers, args.memory_limit),
    }
    print(json.dumps(entry, indent=2))
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    results.append(entry)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
