"""Pipeline benchmark: demo data generation and a full pipeline run at several sizes.

    python -m bench.run                      # 100,000 customers
    python -m bench.run --customers 1000000  # any sizes, repeatable flag

Each phase runs in a fresh Python process that reports its wall time and peak
resident memory (its own and its children's, e.g. dbt), so phases are measured
separately. Results are appended to bench/results/pipeline.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "pipeline.json"


def _peak_mb() -> dict[str, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"peak_mb_process": round(own, 1), "peak_mb_children": round(children, 1)}


def phase_generate(out: Path, customers: int) -> dict:
    from orchestration.demo_data import generate_demo_data

    started = time.monotonic()
    summary = generate_demo_data(out, customers=customers)
    return {
        "seconds": round(time.monotonic() - started, 1),
        "orders": summary.orders,
        "events": summary.events,
        "contacts_rows": summary.contacts_rows,
        "end_date": str(summary.end_date),
        **_peak_mb(),
    }


def phase_pipeline(raw: Path, home: Path, as_of: str) -> dict:
    import duckdb

    from orchestration.cli import run_pipeline
    from orchestration.settings import Settings

    settings = Settings(home=home, warehouse=home / "warehouse.duckdb", raw_dir=raw, as_of=as_of)
    started = time.monotonic()
    ok = run_pipeline(settings)
    seconds = time.monotonic() - started
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    counts = {
        t: con.execute(f"select count(*) from {t}").fetchone()[0]
        for t in ("landing.events", "landing.commerce_orders", "marts.dim_customers", "marts.rejects")
    }
    con.close()
    return {"ok": ok, "seconds": round(seconds, 1), "rows": counts, **_peak_mb()}


def _run_phase(*args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--phase", *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"phase {args[0]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench(customers: int, workdir: Path) -> dict:
    raw, home = workdir / "raw", workdir / "home"
    generated = _run_phase("generate", str(raw), str(customers))
    pipeline = _run_phase("pipeline", str(raw), str(home), generated["end_date"])
    return {
        "benchmark": "pipeline",
        "customers": customers,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.python_version()} cpus={len(__import__('os').sched_getaffinity(0))}",
        "generate": generated,
        "pipeline": pipeline,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, action="append")
    parser.add_argument("--phase", nargs="+")
    args = parser.parse_args(argv)
    if args.phase:
        name, *rest = args.phase
        if name == "generate":
            result = phase_generate(Path(rest[0]), int(rest[1]))
        else:
            result = phase_pipeline(Path(rest[0]), Path(rest[1]), rest[2])
        print(json.dumps(result))
        return 0
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    for customers in args.customers or [100_000]:
        workdir = Path(tempfile.mkdtemp(prefix=f"tideline-bench-{customers}-"))
        try:
            entry = bench(customers, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        print(json.dumps(entry, indent=2))
        results.append(entry)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
