"""Sync benchmark: a large segment through the real engine to a loopback HTTP batch endpoint.

    python -m bench.sync                    # 1,000,000 rows
    python -m bench.sync --rows 200000

Measures, with ledger and policies on (mode upsert, webhook destination, 1,000
records per request, no rate limit):
  - a first full sync of every row,
  - a rerun with 1% of the rows changed (only those are sent),
rows per second and peak resident memory of this process (the HTTP sink runs in a
thread of it, in lean mode: it counts, it keeps no bodies). Results are appended to
bench/results/sync.json. The comparison with drt (issue #4) is still to be added.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from activation.config import PolicyConfig, SyncBinding
from activation.destinations.webhook import WebhookDestination
from activation.engine import SyncEngine
from activation.sinks.http_sink import HttpSink

RESULTS = Path(__file__).resolve().parent / "results" / "sync.json"


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run(rows: int, workers: int = 4) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="tideline-sync-bench-"))
    con = duckdb.connect(str(workdir / "w.duckdb"))
    con.execute("create schema marts")
    con.execute(
        f"""create table marts.segment as
            select 'c' || i as customer_id, 'c' || i || '@example.com' as email,
                   'First' || (i % 1000) as first_name, (i % 97) * 1.5 as score
            from range({rows}) t(i)"""
    )
    con.execute(
        "create table marts.dim_customers as select customer_id, cast(null as varchar) as timezone from marts.segment"
    )
    os.environ["BENCH_WEBHOOK_SECRET"] = "bench"
    binding = SyncBinding(
        segment="segment",
        relation="marts.segment",
        destination="crm_batch",
        mode="upsert",
        channel=None,
        fields={"email": "email", "first_name": "first_name", "score": "score"},
        campaign="bench",
    )
    out: dict = {"rows": rows, "workers": workers, "batch_size": 1000}
    with HttpSink(secret="bench", lean=True) as sink:
        destination = WebhookDestination.from_config(
            "crm_batch",
            {"url": sink.url("/batch"), "secret_env": "BENCH_WEBHOOK_SECRET", "max_batch_size": 1000},
        )
        started = time.monotonic()
        first = SyncEngine(con, destination, binding, PolicyConfig(), workers=workers).run()
        full = time.monotonic() - started
        out["full_sync"] = {
            "seconds": round(full, 2),
            "sent": first.sent,
            "rows_per_second": round(rows / full),
        }

        con.execute("update marts.segment set score = score + 1 where hash(customer_id) % 100 = 0")
        started = time.monotonic()
        second = SyncEngine(con, destination, binding, PolicyConfig(), workers=workers).run()
        rerun = time.monotonic() - started
        out["rerun_1pct_changed"] = {
            "seconds": round(rerun, 2),
            "changed": second.counts["changed"],
            "sent": second.sent,
            "speedup_vs_full": round(full / rerun, 1),
        }
        out["sink_records"] = sink.count_records()
        destination.close()
    out["peak_mb"] = _peak_mb()
    con.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args(argv)
    entry = {
        "benchmark": "sync",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.python_version()} cpus={len(os.sched_getaffinity(0))}",
        **run(args.rows, args.workers),
    }
    print(json.dumps(entry, indent=2))
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    results.append(entry)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
