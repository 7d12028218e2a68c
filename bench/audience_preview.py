"""Audience preview benchmark: one audience with three event conditions, previewed at 1,000,000 customers.

    python -m bench.audience_preview                      # 1,000,000 customers, ~40 events each
    python -m bench.audience_preview --customers 100000   # smaller

Builds, with SQL alone (no demo generator, no dbt: minutes saved), the relations the compiled
condition and the preview read: marts.dim_customers (consents), intermediate.int_events_stitched
(~40 events per customer over a year), intermediate.int_orders_resolved, the products, two other
audiences to overlap with, and the suppression list; then times `preview()` on a read-only
connection, as `tideline audience preview` runs it. Target: under 5 s at 1,000,000
customers (issue 13). The result is written to bench/results/audience_preview.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import duckdb

RESULTS = Path(__file__).resolve().parent / "results" / "audience_preview.json"
TARGET_SECONDS = 5.0
AS_OF = dt.date(2026, 3, 10)
AUDIENCE = """\
description: Benchmark audience with three event conditions.
owner: bench
where:
  all:
    - event: {type: product_view, within_days: 14, count: {gte: 3}}
    - event: {type: add_to_cart, within_days: 7, not_followed_by: order}
    - not: {event: {type: checkout_started, within_days: 30}}
    - consent: email
fields: [email]
"""
EVENT_TYPES = "['page_view', 'page_view', 'product_view', 'product_view', 'product_view', 'add_to_cart', 'checkout_started', 'login']"


def build_warehouse(path: Path, customers: int, events_per_customer: int) -> dict[str, int]:
    """The relations the compiler and the preview read, generated with SQL (deterministic hashes)."""
    con = duckdb.connect(str(path))
    cutoff = f"timestamp '{AS_OF + dt.timedelta(days=1)} 00:00:00'"
    for schema in ("marts", "intermediate", "staging", "tideline_sync"):
        con.execute(f"create schema {schema}")
    con.execute(
        f"""create table marts.dim_customers as
            select 'c' || lpad(cast(i as varchar), 7, '0') as customer_id,
                   'c' || cast(i as varchar) || '@example.com' as email,
                   hash(i * 16 + 1) % 10 < 6 as email_opt_in, hash(i * 16 + 2) % 10 < 3 as sms_opt_in,
                   hash(i * 16 + 3) % 10 < 2 as push_opt_in,
                   timestamp '2025-01-01' as email_consent_at, timestamp '2025-01-01' as sms_consent_at,
                   timestamp '2025-01-01' as push_consent_at, date '{AS_OF}' as as_of_date
            from range({customers}) as t(i)"""
    )
    con.execute(
        f"""create table intermediate.int_events_stitched as
            select 'e' || cast(i as varchar) as event_id,
                   'c' || lpad(cast(hash(i * 16 + 4) % {customers} as varchar), 7, '0') as customer_id,
                   {EVENT_TYPES}[1 + cast(hash(i * 16 + 5) % 8 as integer)] as event_type,
                   {cutoff} - to_seconds(cast(hash(i * 16 + 6) % (365 * 86400) as bigint)) as occurred_at,
                   'p' || cast(hash(i * 16 + 7) % 500 as varchar) as product_id,
                   null::varchar as url, null::varchar as utm_source, null::varchar as utm_medium,
                   null::varchar as utm_campaign
            from range({customers * events_per_customer}) as t(i)"""
    )
    con.execute(
        f"""create table intermediate.int_orders_resolved as
            select 'o' || cast(i as varchar) as order_id,
                   'c' || lpad(cast(hash(i * 16 + 8) % {customers} as varchar), 7, '0') as customer_id,
                   {cutoff} - to_seconds(cast(hash(i * 16 + 9) % (365 * 86400) as bigint)) as ordered_at,
                   20.0 + hash(i * 16 + 10) % 200 as amount, 'completed' as status, true as is_purchase,
                   null::varchar as coupon_code, 'web' as channel
            from range({customers * 2}) as t(i)"""
    )
    con.execute(
        "create table staging.stg_commerce__products as "
        "select 'p' || cast(i as varchar) as product_id, 'c' || cast(i % 12 as varchar) as category from range(500) t(i)"
    )
    for name, modulo in (("win_back_dormant", 7), ("vip_early_access", 20)):
        con.execute(
            f"create table marts.{name} as select customer_id from marts.dim_customers "
            f"where hash(customer_id || '11') % {modulo} = 0"
        )
    con.execute(
        "create table tideline_sync.suppressions as select customer_id, 'email' as channel, 'manual' as reason "
        "from marts.dim_customers where hash(customer_id || '12') % 100 = 0"
    )
    counts = {
        "customers": con.execute("select count(*) from marts.dim_customers").fetchone()[0],
        "events": con.execute("select count(*) from intermediate.int_events_stitched").fetchone()[0],
        "orders": con.execute("select count(*) from intermediate.int_orders_resolved").fetchone()[0],
    }
    con.execute("checkpoint")
    con.close()
    return counts


def _commit() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        return done.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    from activation.audiences import preview

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--events-per-customer", type=int, default=40)
    parser.add_argument("--runs", type=int, default=5, help="previews timed; the median is the result")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tideline-bench-audience-") as tmp:
        folder = Path(tmp)
        started = time.monotonic()
        counts = build_warehouse(folder / "warehouse.duckdb", args.customers, args.events_per_customer)
        build_seconds = time.monotonic() - started
        (folder / "bench_audience.yml").write_text(AUDIENCE)
        runs, result = [], {}
        for _ in range(args.runs):
            con = duckdb.connect(str(folder / "warehouse.duckdb"), read_only=True)
            started = time.monotonic()
            result = preview(con, folder / "bench_audience.yml")
            runs.append(round(time.monotonic() - started, 3))
            con.close()
    seconds = statistics.median(runs)  # the first run reads the file cold; the median is the typical answer
    record = {
        "benchmark": "audience_preview",
        "seconds": seconds,
        "runs_seconds": runs,
        "best_seconds": min(runs),
        "target_seconds": TARGET_SECONDS,
        "within_target": seconds < TARGET_SECONDS,
        "customers": counts["customers"],
        "events": counts["events"],
        "orders": counts["orders"],
        "audience_size": result["size"],
        "reachable": result["reachable"],
        "build_seconds": round(build_seconds, 1),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "duckdb": duckdb.__version__,
            "cpus": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2),
        },
        "commit": _commit(),
        "recorded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    if not record["within_target"]:
        print(f"audience preview took {seconds:.2f} s, over the {TARGET_SECONDS:.0f} s target")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
