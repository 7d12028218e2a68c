"""Campaign benchmark: one message campaign to millions of customers through the real engine.

    python -m bench.campaign                       # 1,000,000 customers
    python -m bench.campaign --customers 5000000

What a segment activation of kind `message` does in the pipeline (activation.activate.activate:
the receiver's revocations taken in, the sync engine under the DuckDB limits, the destination
closed), to the loopback webhook sink (tideline.demo.sinks.http_sink) in its own process, which
checks every request's HMAC signature and writes the record keys it accepted to a file.

The world, generated in SQL (`make_world`; the fixed clock NOW is 13:00 UTC):

  - marts.dim_customers: N customers with sms consent (most opted in, `sms_opt_in` false for
    about 8%) and a time zone (about 5% in Asia/Tokyo, where it is 22:00: quiet hours);
  - marts.campaign_segment: every customer, with phone, first name and offer (the segment of a
    "winter sale" SMS, A/B test 50/50, holdout 5%);
  - unsubscribes: about 2% of customers revoked sms consent through the engagement receiver (a
    `crm/consents/receiver-*.jsonl` file the sync takes in, as in the pipeline) after opting in;
  - suppressions: about 1% on the operators' list (hard bounced, channel all);
  - the ledger: an earlier campaign's sms to every customer 20 days ago (outside the 7-day cap
    window) and, for about 10%, one 2 days ago (the cap, config/activation.yml's marketing sms:
    1 in 7 days, skips them).

Policies are config/activation.yml's (frequency caps, quiet hours 21-8, the default time zone).
The destination is a webhook with 1,000 records per request and no rate limit (the loopback sink
has none; a real gateway's limit decides the real send time, which a dry run estimates). Each
DuckDB limit is the sync's default (128MB, 2 threads) unless --memory-limit says otherwise.

Measured, in a child process (its peak resident memory is the sync's own): the campaign's first
run (plan, policies, send: the engine's per-phase seconds), then a rerun on the same world, which
must send nothing. Checked: the sink's count equals the ledger's sent count, every accepted key
is one the ledger holds as sent, and no accepted key belongs to a customer who had no consent,
had unsubscribed, was suppressed, over the cap, in the holdout or in quiet hours. Results are
appended to bench/results/campaign.json with the machine's load average.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "campaign.json"
ROOT = Path(__file__).resolve().parents[1]
NOW = dt.datetime(2026, 12, 7, 13, 0, 0)  # naive UTC: 22:00 in Tokyo (quiet hours), 08:00 in New York
SECRET_ENV = "BENCH_WEBHOOK_SECRET"
SECRET = "bench-campaign"  # the loopback sink's HMAC secret, for this benchmark only
SEGMENT, DESTINATION, CAMPAIGN, VERSION = "campaign_segment", "sms", "winter_sale", "v1"

# Each customer's class, from a hash of their number (so every share is stable and about as
# stated): the world's tables are made from it, and the checks compare the sink with it.
WORLD_SQL = """
create schema if not exists marts;
create schema if not exists bench;
create or replace table bench.truth as
select 'c' || lpad(cast(i as varchar), 8, '0') as customer_id,
       hash(i, 'consent') % 1000 < 80 as no_consent,
       hash(i, 'revoked') % 1000 < 20 as revoked,
       hash(i, 'suppressed') % 1000 < 10 as suppressed,
       hash(i, 'capped') % 1000 < 100 as capped,
       case when hash(i, 'zone') % 100 < 5 then 'Asia/Tokyo'
            else (['Europe/London', 'Europe/Berlin', 'America/New_York', 'Asia/Kolkata'])
                 [1 + cast(hash(i, 'zone2') % 4 as integer)] end as timezone,
       i
from range(1, $n + 1) as t(i);
create or replace table marts.dim_customers as
select customer_id, not no_consent as sms_opt_in,
       timestamp '2026-01-01' + to_minutes(cast(i % 400000 as integer)) as sms_consent_at,
       timezone
from bench.truth;
create or replace table marts.campaign_segment as
select customer_id, '+4477' || lpad(cast(i as varchar), 8, '0') as phone,
       (['Ada', 'Ben', 'Chloé', 'Dev', 'Emma', 'Farid', 'Grace', 'Hiro'])[1 + cast(i % 8 as integer)] as first_name,
       (['10%', '15%', '20%'])[1 + cast(i % 3 as integer)] as offer
from bench.truth;
"""


def make_world(db: Path, raw: Path, customers: int) -> dict:
    """The warehouse and landing zone the campaign runs on (see the module docstring)."""
    import duckdb

    from activation.ledger import SCHEMA, ensure_schema

    started = time.perf_counter()
    con = duckdb.connect(str(db))
    con.execute("set memory_limit = '1GB'")
    for statement in WORLD_SQL.split(";"):
        if statement.strip():
            con.execute(statement, {"n": customers} if "$n" in statement else None)
    ensure_schema(con)
    con.execute(
        f"""insert into {SCHEMA}.suppressions
            select customer_id, 'all', 'hard_bounced', $at from bench.truth where suppressed""",
        {"at": NOW - dt.timedelta(days=30)},
    )
    # an earlier campaign: everyone 20 days ago, and the capped share again 2 days ago
    for days, only in ((20, ""), (2, "where capped")):
        con.execute(
            f"""insert into {SCHEMA}.delivery_log (idempotency_key, sync_key, sync_id, customer_id, action,
                    status, attempt, channel, campaign, content_version, recorded_at)
                select cast(substr(sha256('earlier|' || $days || '|' || customer_id), 1, 32) as uuid),
                       'autumn__sms', 'earlier-' || $days, customer_id, 'send', 'sent', 1, 'sms',
                       'autumn_' || $days, 'v1', $at
                from bench.truth {only}""",
            {"days": days, "at": NOW - dt.timedelta(days=days)},
        )
    # unsubscribes through the engagement receiver's consent file (taken in by the sync)
    folder = raw / "crm" / "consents"
    folder.mkdir(parents=True, exist_ok=True)
    revoked_at = (NOW - dt.timedelta(days=1)).isoformat() + "Z"
    revoked = con.execute("select customer_id from bench.truth where revoked order by customer_id").fetchall()
    with (folder / "receiver-bench.jsonl").open("w") as fh:
        for (customer,) in revoked:
            line = {"customer_id": customer, "channel": "sms", "status": "revoked"}
            fh.write(json.dumps({**line, "consented_at": revoked_at, "source": "unsubscribe link"}) + "\n")
    ledger_rows = con.execute(f"select count(*) from {SCHEMA}.delivery_log").fetchone()[0]
    con.close()
    return {"seconds": round(time.perf_counter() - started, 1), "ledger_rows_before": int(ledger_rows)}


def _binding():  # noqa: ANN202 - activation.config.SyncBinding, imported in the child only
    from activation.config import SyncBinding

    return SyncBinding(
        segment=SEGMENT,
        relation=f"marts.{SEGMENT}",
        destination=DESTINATION,
        mode="message",
        channel="sms",
        fields={"phone": "phone", "first_name": "first_name", "offer": "offer"},
        campaign=CAMPAIGN,
        content={"text": "Hi {{ first_name }}, {{ offer }} off all winter coats this week. STOP to opt out"},
        content_version=VERSION,
        frequency_cap="marketing",
        holdout_share=0.05,
        variants={
            "A": {},
            "B": {"text": "{{ first_name }}: {{ offer }} off coats, today only. STOP to opt out"},
        },
        variant_weights={"A": 0.5, "B": 0.5},
    )


def _config(url: str):  # noqa: ANN202 - activation.config.ActivationConfig
    """config/activation.yml's policies, one webhook destination pointed at the loopback sink."""
    from dataclasses import replace

    from activation.config import load_config

    env = {SECRET_ENV: SECRET}
    config = load_config(ROOT / "config" / "activation.yml", env)
    destination = {"type": "webhook", "url": url, "secret_env": SECRET_ENV, "max_batch_size": 1000}
    return replace(config, destinations={DESTINATION: destination}, env=env)


def _child(db: str, raw: str, url: str, workers: int, memory_limit: str) -> dict:
    """The campaign's run and rerun, in this (child) process."""
    import duckdb

    from activation.activate import activate
    from activation.warehouse import DuckDBLimits

    con = duckdb.connect(db)
    limits = DuckDBLimits.resolve(memory_limit=memory_limit, env={})
    binding, config = _binding(), _config(url)
    out: dict = {}
    for run in ("first_run", "rerun"):
        started = time.perf_counter()
        done = activate(con, binding, config, raw, limits=limits, workers=workers, now=NOW)
        seconds = time.perf_counter() - started
        r = done.result
        out[run] = {
            "seconds": round(seconds, 2),
            "phase_seconds": {k: round(v, 2) for k, v in r.phase_seconds.items()},
            "segment_rows": r.counts.get("segment_rows", 0),
            "planned": r.counts.get("planned", 0),
            "sent": r.sent,
            "failed": r.failed,
            "unknown": r.unknown,
            "skipped_by_reason": r.skipped_by_reason,
            "revocations_taken_in": done.intake.revocations,
        }
        out[run]["sent_per_second"] = round(r.sent / seconds) if r.sent else 0
    out["ledger_rows_after"] = con.execute("select count(*) from tideline_sync.delivery_log").fetchone()[0]
    con.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["peak_mb"] = round(usage.ru_maxrss / 1024, 1)
    out["cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 1)
    return out


@contextlib.contextmanager
def sink_process(out_dir: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """The loopback webhook sink in its own process (lean: counts, no bodies in memory; the
    signature checked; accepted keys written under `out_dir`); yields its base URL and process."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tideline.demo.sinks.http_sink", "--lean", "--port", str(port)]
        + ["--out-dir", str(out_dir), "--secret-env", SECRET_ENV],
        cwd=ROOT,
        env={**os.environ, SECRET_ENV: SECRET},
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if "listening on" not in line:
            raise RuntimeError(f"the HTTP sink did not start: {line!r}")
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def sink_stats(base_url: str) -> dict:
    with urllib.request.urlopen(f"{base_url}/_sink/stats", timeout=30) as response:
        return json.loads(response.read())


def peak_mb_of(pid: int) -> float:
    """A live process's peak resident memory (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def verify(db: Path, accepted: Path, sink_records: int) -> dict:
    """The sink against the ledger and the world: raises when a check fails."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    con.execute("set memory_limit = '1GB'")  # the checker, not the sync: bounded all the same
    key = "cast(substr(sha256(concat_ws('|', $d, $s, t.customer_id, $v)), 1, 32) as uuid)"
    names = {"d": DESTINATION, "s": SEGMENT, "v": f"{CAMPAIGN}:{VERSION}"}
    con.execute(
        "create temp table got as select cast(column0 as uuid) as k from read_csv($f, header = false, columns = {'column0': 'varchar'})",
        {"f": str(accepted)},
    )
    row = con.execute(
        f"""with ledger as (
                select idempotency_key as k, customer_id from tideline_sync.delivery_ledger
                where sync_key = $sync_key and status = 'sent'),
            expected as (
                select {key} as k, t.*, l.status as last_status, l.reason as last_reason
                from bench.truth as t
                left join tideline_sync.delivery_ledger as l
                  on l.sync_key = $sync_key and l.customer_id = t.customer_id)
            select (select count(*) from got), (select count(distinct k) from got),
                   (select count(*) from ledger),
                   (select count(*) from got where k not in (select k from ledger)),
                   (select count(*) from got as g join expected as e on g.k = e.k
                    where e.no_consent or e.revoked or e.suppressed or e.capped
                       or hour(timezone(e.timezone, timezone('UTC', $now))) not between 8 and 20
                       or e.last_status = 'holdout')""",
        {**names, "sync_key": f"{SEGMENT}__{DESTINATION}", "now": NOW},
    ).fetchone()
    con.close()
    got, distinct, ledger_sent, unknown_keys, ineligible = (int(v) for v in row)
    out = {
        "sink_records": sink_records,
        "accepted_keys": got,
        "distinct_accepted_keys": distinct,
        "ledger_sent": ledger_sent,
        "accepted_not_in_ledger": unknown_keys,
        "sent_to_ineligible": ineligible,
    }
    problems = []
    if not (sink_records == got == distinct == ledger_sent):
        problems.append("the sink's count, its distinct keys and the ledger's sent count differ")
    if unknown_keys:
        problems.append(f"{unknown_keys} keys the sink accepted are not sent in the ledger")
    if ineligible:
        problems.append(f"{ineligible} messages went to customers who should have been skipped")
    if problems:
        raise RuntimeError("; ".join(problems) + f": {out}")
    return out


def run(customers: int, workers: int, memory_limit: str, workdir: Path) -> dict:
    db, raw, outbox = workdir / "w.duckdb", workdir / "raw", workdir / "sink"
    outbox.mkdir(parents=True, exist_ok=True)
    out: dict = {"customers": customers, "workers": workers, "batch_size": 1000, "memory_limit": memory_limit}
    out["world"] = make_world(db, raw, customers)
    with sink_process(outbox) as (base, sink):
        child = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.campaign",
                "--child",
                str(db),
                "--raw",
                str(raw),
                "--url",
                f"{base}/sms",
            ]
            + ["--workers", str(workers), "--memory-limit", memory_limit],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if child.returncode != 0:
            raise RuntimeError(f"the campaign failed:\n{child.stderr[-3000:]}")
        out["tideline"] = json.loads(child.stdout.strip().splitlines()[-1])
        stats = sink_stats(base)
        out["sink"] = {
            "records": stats["records"],
            "requests": stats["requests"],
            "peak_mb": peak_mb_of(sink.pid),
        }
    first, rerun = out["tideline"]["first_run"], out["tideline"]["rerun"]
    if rerun["sent"] != 0:
        raise RuntimeError(f"the rerun sent {rerun['sent']} messages again")
    out["checks"] = verify(db, outbox / "sms.accepted", int(stats["records"]))
    out["plan_seconds"] = first["phase_seconds"].get("plan_and_policies")
    out["send_seconds"] = first["phase_seconds"].get("send")
    out["total_seconds"] = first["seconds"]
    out["peak_mb_any"] = max(out["tideline"]["peak_mb"], out["sink"]["peak_mb"])
    out["target_seconds"] = 300
    out["met"] = first["seconds"] <= 300
    return out


def _commit() -> str:
    from bench.sync import _commit as commit

    return commit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--memory-limit", default="128MB", help="DuckDB memory_limit for the sync connection")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (warehouse, sink files)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--raw", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--url", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args.raw, args.url, args.workers, args.memory_limit)))
        return 0
    load = [round(x, 2) for x in os.getloadavg()]
    workdir = Path(tempfile.mkdtemp(prefix="tideline-campaign-bench-"))
    try:
        measured = run(args.customers, args.workers, args.memory_limit, workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    entry = {
        "benchmark": "campaign",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "machine": f"{platform.machine()} {platform.python_version()} cpus={len(os.sched_getaffinity(0))}",
        "load_average_at_start": load,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        **measured,
    }
    print(json.dumps(entry, indent=2))
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    results.append(entry)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
