"""Pipeline benchmark: demo data generation, a full pipeline run, and model training and scoring.

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
    from tideline.demo.data import generate_demo_data

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
    import os

    import duckdb

    from tideline.commands.run import run_pipeline
    from tideline.settings import Settings

    settings = Settings(home=home, warehouse=home / "warehouse.duckdb", raw_dir=raw, as_of=as_of)
    started = time.monotonic()
    ok = run_pipeline(settings, dict(os.environ))
    seconds = time.monotonic() - started
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    counts = {
        t: con.execute(f"select count(*) from {t}").fetchone()[0]
        for t in ("landing.events", "landing.commerce_orders", "marts.dim_customers", "marts.rejects")
    }
    con.close()
    return {"ok": ok, "seconds": round(seconds, 1), "rows": counts, **_peak_mb()}


def phase_ml(home: Path, as_of: str) -> dict:
    """Each model's training and the scoring, timed one by one on the warehouse the pipeline built."""
    import datetime as dt

    import duckdb

    from models_ml.lifetime_value import train_clv
    from models_ml.registry import LoadedModel
    from models_ml.scoring import at_risk_reasons, score_customers
    from models_ml.training import CHURN, PROPENSITY, train_task

    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    out: dict = {}
    trained = {}
    for task in (CHURN, PROPENSITY):
        started = time.monotonic()
        model = train_task(con, task)
        trained[task.name] = LoadedModel(task.name, "bench", model.model, model.metadata())
        out[task.name] = {
            "seconds": round(time.monotonic() - started, 1),
            "training_rows": model.training_rows,
            "evaluation_rows": model.evaluation_rows,
            "roc_auc": round(model.metrics.roc_auc, 4),
            "baseline_roc_auc": round(model.baseline_metrics.roc_auc, 4),
            "lift_top_decile": round(model.metrics.lift_top_decile, 3),
            "baseline_lift_top_decile": round(model.baseline_metrics.lift_top_decile, 3),
        }
    started = time.monotonic()
    lifetime = train_clv(con)
    out["clv"] = {
        "seconds": round(time.monotonic() - started, 1),
        "customers": lifetime.customers,
        **{k: round(v, 4) for k, v in lifetime.metrics.items()},
    }
    started = time.monotonic()
    scores, features = score_customers(
        con,
        dt.date.fromisoformat(as_of),
        trained["churn"],
        trained["propensity"],
        LoadedModel("clv", "bench", lifetime.model(), lifetime.metadata()),
    )
    reasons = at_risk_reasons(trained["churn"], features, scores)
    out["scoring"] = {
        "seconds": round(time.monotonic() - started, 1),
        "customers": len(scores),
        "reasons_rows": len(reasons),
    }
    con.close()
    return {**out, **_peak_mb()}


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
    ml = _run_phase("ml", str(home), generated["end_date"])
    return {
        "benchmark": "pipeline",
        "customers": customers,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.python_version()} cpus={len(__import__('os').sched_getaffinity(0))}",
        "generate": generated,
        "pipeline": pipeline,
        "ml": ml,
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
        elif name == "ml":
            result = phase_ml(Path(rest[0]), rest[1])
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
