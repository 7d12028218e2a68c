"""Pipeline benchmark: demo data generation, the input floor, a full pipeline run, a rerun with
nothing new, a rerun after one new day of data, and model training and scoring.

    python -m bench.run                      # 100,000 customers
    python -m bench.run --customers 1000000  # any sizes, repeatable flag

Each phase runs in a fresh Python process that reports its wall time and peak resident memory
(its own and its children's, e.g. dbt: `peak_mb_any` is the larger), so phases are measured
separately. The floor (issue 17) is what the data costs at least: DuckDB reads every landing file
once with types and computes RFM and lifecycle stages in hand-written SQL. Each pipeline run
reports its Dagster steps' seconds. Results are appended to bench/results/pipeline.json; the
entry's top-level keys full_seconds, floor_seconds, peak_mb_any, no_change_seconds and
incremental_day_seconds are the figures the targets are stated in (docs/scaling.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "pipeline.json"


def _peak_mb() -> dict[str, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "peak_mb_process": round(own, 1),
        "peak_mb_children": round(children, 1),
        "peak_mb_any": round(max(own, children), 1),
    }


FLOOR_SQL = """
create table orders as
    select order_id, customer_id, try_cast(ordered_at as timestamp) as ordered_at,
           try_cast(amount as double) as amount, status
    from read_parquet('{raw}/commerce/orders/**/*.parquet', union_by_name = true);
create table order_items as select * from read_parquet('{raw}/commerce/order_items/**/*.parquet', union_by_name = true);
create table events as
    select * from read_json('{raw}/events/**/*.jsonl', format = 'newline_delimited', union_by_name = true,
        columns = {{event_id: 'VARCHAR', event_type: 'VARCHAR', occurred_at: 'TIMESTAMP', customer_id: 'VARCHAR',
                   anonymous_id: 'VARCHAR', session_id: 'VARCHAR', url: 'VARCHAR', product_id: 'VARCHAR'}});
create table contacts as select * from read_csv('{raw}/crm/contacts/**/*.csv', union_by_name = true);
create table consents as select * from read_csv('{raw}/crm/consents/**/*.csv', union_by_name = true);
create table rfm as
    with per_customer as (
        select customer_id, date_diff('day', max(ordered_at), date '{as_of}') as recency_days,
               count(*) as frequency, sum(amount) as monetary
        from orders where status = 'completed' and ordered_at is not null group by 1)
    select *, ntile(5) over (order by recency_days desc) as r, ntile(5) over (order by frequency) as f,
           ntile(5) over (order by monetary) as m,
           case when recency_days <= 30 and frequency = 1 then 'new' when recency_days <= 90 then 'active'
                when recency_days <= 180 then 'at_risk' else 'churned' end as lifecycle_stage
    from per_customer;
"""


def phase_floor(raw: Path, as_of: str) -> dict:
    """The input floor: every landing file read once with types, RFM and lifecycle by hand."""
    import duckdb

    started = time.monotonic()
    con = duckdb.connect()
    for statement in FLOOR_SQL.format(raw=raw, as_of=as_of).split(";"):
        if statement.strip():
            con.execute(statement)
    counts = {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in ("orders", "events", "rfm")}
    con.close()
    return {"seconds": round(time.monotonic() - started, 1), "rows": counts, **_peak_mb()}


def add_one_day(raw: Path, end_date: str, share: float = 0.003) -> dict:
    """One new day of data after `end_date`: about `share` of the orders as a new Parquet file, and
    as many events appended to the last month's JSON Lines file (as a receiver appends)."""
    import duckdb

    day = dt.date.fromisoformat(end_date) + dt.timedelta(days=1)
    con = duckdb.connect()
    month = raw / "commerce" / "orders" / f"month={day:%Y-%m}"
    month.mkdir(parents=True, exist_ok=True)
    con.execute(
        f"""copy (select 'new_' || order_id as order_id, customer_id,
                         strftime(timestamp '{day}' + to_seconds(hash(order_id) % 86400), '%Y-%m-%dT%H:%M:%SZ')
                             as ordered_at, amount, currency, status, discount_amount, coupon_code, channel
                  from read_parquet('{raw}/commerce/orders/**/*.parquet', union_by_name = true)
                  using sample {share * 100}% (bernoulli, 7))
            to '{month}/part-new-day.parquet' (format parquet)"""
    )
    orders = con.execute(f"select count(*) from read_parquet('{month}/part-new-day.parquet')").fetchone()[0]
    files = sorted((raw / "events").glob("month=*/*.jsonl"))
    last = files[-1]
    rows = con.execute(
        f"""select to_json(struct_pack(event_id := 'new_' || event_id, event_type := event_type,
                   occurred_at := strftime(timestamp '{day}' + to_seconds(hash(event_id) % 86400), '%Y-%m-%dT%H:%M:%SZ'),
                   customer_id := customer_id, anonymous_id := anonymous_id, session_id := session_id))::varchar
            from read_json('{raw}/events/**/*.jsonl', format = 'newline_delimited', union_by_name = true,
                           columns = {{event_id: 'VARCHAR', event_type: 'VARCHAR', customer_id: 'VARCHAR',
                                      anonymous_id: 'VARCHAR', session_id: 'VARCHAR'}})
            using sample {share * 100}% (bernoulli, 7)"""
    ).fetchall()
    con.close()
    with last.open("a", encoding="utf-8") as fh:
        fh.writelines(f"{line}\n" for (line,) in rows)
    return {"day": str(day), "orders": orders, "events": len(rows), "events_file": str(last.relative_to(raw))}


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
    import duckdb

    from tideline.commands.demo import with_local_destinations
    from tideline.commands.run import run_pipeline
    from tideline.settings import Settings

    settings = replace(Settings.from_env(dict(os.environ)), home=home, warehouse=home / "warehouse.duckdb")
    settings = replace(settings, raw_dir=raw, as_of=as_of)
    started = time.monotonic()
    with with_local_destinations(settings, dict(os.environ)) as (local, values):  # as `tideline run` does
        ok = run_pipeline(local, dict(os.environ), activation_values=values)
    seconds = time.monotonic() - started
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    counts = {
        t: con.execute(f"select count(*) from {t}").fetchone()[0]
        for t in ("landing.events", "landing.commerce_orders", "marts.dim_customers", "marts.rejects")
    }
    landing = dict(con.execute("select action, count(*) from landing.files group by 1").fetchall())
    con.close()
    return {
        "ok": ok,
        "seconds": round(seconds, 1),
        "rows": counts,
        "landing_files": landing,
        "steps": _step_seconds(settings),
        "memory_limit": settings.pipeline_memory_limit,
        **_peak_mb(),
    }


def _step_seconds(settings) -> dict[str, float]:  # noqa: ANN001 - tideline.settings.Settings
    """Each step's seconds in the warehouse's latest Dagster run (the run this phase made)."""
    import dagster as dg

    from orchestration.runner import step_seconds

    with dg.DagsterInstance.from_config(str(settings.instance_dir)) as instance:
        runs = instance.get_runs(limit=1)
        return step_seconds(instance, runs[0].run_id) if runs else {}


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
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # progress on stderr: a 1M benchmark runs for over an hour and prints its entry only at the end
    print(f"bench: phase {args[0]} done: {json.dumps(result)[:300]}", file=sys.stderr, flush=True)
    return result


def bench(customers: int, workdir: Path) -> dict:
    raw, home = workdir / "raw", workdir / "home"
    load = [round(x, 2) for x in os.getloadavg()]  # the machine's load when the benchmark began
    generated = _run_phase("generate", str(raw), str(customers))
    end = generated["end_date"]
    floor = _run_phase("floor", str(raw), end)
    pipeline = _run_phase("pipeline", str(raw), str(home), end)
    unchanged = _run_phase("pipeline", str(raw), str(home), end)
    ml = _run_phase("ml", str(home), end)
    day = add_one_day(raw, end)
    next_day = _run_phase("pipeline", str(raw), str(home), day["day"])
    runs = (pipeline, unchanged, next_day)
    return {
        "benchmark": "pipeline",
        "customers": customers,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.python_version()} cpus={len(os.sched_getaffinity(0))}",
        "load_average_at_start": load,
        "full_seconds": pipeline["seconds"],
        "floor_seconds": floor["seconds"],
        "peak_mb_any": max(r["peak_mb_any"] for r in runs),
        "no_change_seconds": unchanged["seconds"],
        "incremental_day_seconds": next_day["seconds"],
        "generate": generated,
        "floor": floor,
        "pipeline": pipeline,
        "no_change": unchanged,
        "new_day": {**day, **next_day},
        "ml": ml,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, action="append")
    parser.add_argument("--phase", nargs="+")
    parser.add_argument(
        "--no-record", action="store_true", help="print the entry, do not append it to the results"
    )
    args = parser.parse_args(argv)
    if args.phase:
        name, *rest = args.phase
        if name == "generate":
            result = phase_generate(Path(rest[0]), int(rest[1]))
        elif name == "floor":
            result = phase_floor(Path(rest[0]), rest[1])
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
        if args.no_record:
            continue
        results.append(entry)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
