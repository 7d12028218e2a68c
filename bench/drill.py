"""Delivery drill: syncs killed (SIGKILL) at random points under a fault storm, per destination type.

    python -m bench.drill                        # webhook, crm, smtp, audience_files; 24 kills each
    python -m bench.drill --only smtp --kills 30 --storm 0.3 --seed 7

Not a test (`make drill`, not `make test`): it takes several minutes and measures. For each
destination type a warehouse is built and its segment synced in rounds (a new campaign, or new
field values, per round). In every round the sync runs in a child process that is killed with
SIGKILL at a random moment after it starts sending, again and again; between kills a customer may
withdraw or give consent (message channels), which moves every batch boundary of the rerun. Then
the round is run to the end without kills (each run first settles `unknown` records, see
activation.reconcile). The receiving side is the project's own: the HTTP sink (deduplicating per
record key) for webhook and CRM, the SMTP sink for email, files for ad audiences, all under a
storm of faults on `--storm` of the requests (HTTP: 429 with Retry-After, 500, 503, hangs past the
client's timeout, late acknowledgements; SMTP: 451, acknowledgements after the command timeout,
hangs past the DATA timeout that lose the message; audience files: I/O errors on batches).

Per destination it prints and records:

    kills       SIGKILLs that landed while the sync was running
    duplicates  records delivered more than once: for the HTTP sink, records it processed twice
                (it dedupes per record key) or customers given two keys for one message; for SMTP,
                Message-IDs received twice; for audience files, the same row in two finalised
                add files
    resent      records that reached the receiver again (retries after a timeout within a run,
                resends after a kill) and were recognised by their key
    lost        records the ledger says were sent that the receiver never got, plus audience
                parts never finalised
    unknown     records still `unknown` after the last run (reported, not settled); unknown_seen,
                confirmed and released say how many became unknown and how reconciliation
                settled them
    pending     records still failed or released after the finishing runs (not lost: later runs
                send them)

Results are written to bench/results/drills.json (one row per destination type; a new drill of
a type replaces its row).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from bench.sync import _commit

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results" / "drills.json"
DESTINATIONS = ("webhook", "crm", "smtp", "audience_files")
SECRET, TOKEN = "drill-webhook-secret", "drill-crm-token"
NOON = "2026-03-02T12:00:00"


@dataclass
class Drill:
    """One destination type's drill: its settings, its receiver and what it saw."""

    kind: str
    workdir: Path
    customers: int
    storm: float
    rng: random.Random
    kills: int = 0
    runs: int = 0
    kill_after: tuple[float, float] = (0.05, 2.0)  # seconds after the child starts sending
    phones: dict[int, dict[str, str]] = field(default_factory=dict)  # round -> customer -> phone

    @property
    def db(self) -> Path:
        return self.workdir / "w.duckdb"


# --- the child: one sync run -----------------------------------------------------------------------


class _Flaky:
    """Audience files on a failing disk: a share of batches raises OSError (the engine records the
    batch failed and retryable), and every batch takes a little while, so kills land mid-run."""

    def __init__(self, inner: Any, rate: float, seed: int):
        self.inner, self.rate, self.rng = inner, rate, random.Random(seed)
        self.name, self.kind, self.max_batch_size = inner.name, inner.kind, inner.max_batch_size
        self.idempotent_delivery, self.encoded_batches = inner.idempotent_delivery, inner.encoded_batches

    def validate(self) -> None:
        self.inner.validate()

    def send_batch(self, records, context):
        time.sleep(self.rng.uniform(0.05, 0.3))
        if self.rng.random() < self.rate:
            raise OSError("injected I/O error")
        return self.inner.send_batch(records, context)

    def send_encoded(self, batch, context):
        return self.inner.send_encoded(batch, context)

    def finalize(self, context):
        return self.inner.finalize(context)

    def delivery_evidence(self):
        return self.inner.delivery_evidence()

    def close(self) -> None:
        self.inner.close()


def _child(spec: dict[str, Any]) -> None:
    """One sync run in this process: says `ready` just before sending, then the result as JSON."""
    from activation.config import PolicyConfig, SyncBinding
    from activation.destinations import create
    from activation.engine import SyncEngine

    destination = create(spec["destination"], spec["config"])
    if spec.get("flaky"):
        destination = _Flaky(destination, spec["flaky"], spec["seed"])
    binding = SyncBinding(**spec["binding"])
    policies = PolicyConfig(quiet_hours_start=0, quiet_hours_end=0, max_attempts=8)
    con = duckdb.connect(spec["db"])
    print("ready", flush=True)
    result = SyncEngine(
        con, destination, binding, policies, now=dt.datetime.fromisoformat(NOON), workers=spec["workers"]
    ).run()
    print(json.dumps(result.as_dict()), flush=True)


# --- the parent: rounds of killed runs -------------------------------------------------------------


def _segment(drill: Drill) -> None:
    con = duckdb.connect(str(drill.db))
    try:
        con.execute("create schema if not exists marts")
        con.execute(
            f"""create or replace table marts.dim_customers as
                select 'c' || lpad(cast(i as varchar), 5, '0') as customer_id, true as email_opt_in,
                       true as sms_opt_in, true as push_opt_in, 'UTC' as timezone
                from range({int(drill.customers)}) t(i)"""
        )
        con.execute(
            """create or replace table marts.segment as
               select customer_id, customer_id || '@example.com' as email,
                      '+447700' || right(customer_id, 5) as phone, 0 as score
               from marts.dim_customers"""
        )
    finally:
        con.close()


def _new_round(drill: Drill, n: int) -> None:
    """Upserts and audiences get new field values in every row (new keys); messages a new campaign."""
    con = duckdb.connect(str(drill.db))
    try:
        con.execute(
            "update marts.segment set score = ?, phone = '+4477' || ? || right(customer_id, 5)", [n, n]
        )
        drill.phones[n] = dict(con.execute("select customer_id, phone from marts.segment").fetchall())
    finally:
        con.close()


def _flip_consent(drill: Drill) -> str | None:
    """A customer withdraws (or gives back) consent between two runs: batch boundaries move."""
    if drill.kind not in ("webhook", "smtp"):
        return None
    column = "sms_opt_in" if drill.kind == "webhook" else "email_opt_in"
    customer = f"c{drill.rng.randrange(drill.customers):05d}"
    con = duckdb.connect(str(drill.db))
    try:
        con.execute(
            f"update marts.dim_customers set {column} = not {column} where customer_id = ?", [customer]
        )
    finally:
        con.close()
    return customer


def _spec(drill: Drill, sink: Any, n: int) -> dict[str, Any]:
    workers = 4
    if drill.kind == "webhook":
        config = {
            "type": "webhook",
            "url": sink.url("/sms"),
            "secret_env": "DRILL_WEBHOOK_SECRET",
            "max_batch_size": 20,
            "timeout_seconds": 1.0,
            "retry_attempts": 3,
            "retry_base_seconds": 0.05,
            "delivery_log_dir": str(drill.workdir / "sink"),
        }
        binding = {"mode": "message", "channel": "sms", "fields": {"phone": "phone"}, "campaign": f"drill{n}"}
    elif drill.kind == "crm":
        config = {
            "type": "crm",
            "base_url": sink.url("/crm"),
            "token_env": "DRILL_CRM_TOKEN",
            "object": "contacts",
            "max_batch_size": 25,
            "timeout_seconds": 1.0,
            "retry_attempts": 3,
            "retry_base_seconds": 0.05,
            "delivery_log_dir": str(drill.workdir / "sink"),
        }
        binding = {
            "mode": "upsert",
            "channel": None,
            "fields": {"email": "email", "score": "score"},
            "campaign": "crm",
        }
    elif drill.kind == "smtp":
        host, port = sink.address
        config = {
            "type": "smtp",
            "host": host,
            "port": port,
            "from_address": "shop@example.com",
            "unsubscribe_base_url": "http://127.0.0.1:9/u",
            "max_batch_size": 10,
            "timeout_seconds": 0.5,  # every command but the end of DATA
            "data_timeout_seconds": 1.5,  # late acknowledgements (1 s) are awaited, hangs (2 s) are not
            "retry_attempts": 3,
            "retry_base_seconds": 0.05,
            "delivery_log_dir": str(drill.workdir / "outbox"),
        }
        binding = {
            "mode": "message",
            "channel": "email",
            "fields": {"email": "email"},
            "campaign": f"drill{n}",
            "content": {"subject": "Round {{ campaign }}", "text": "Hello {{ customer_id }}"},
        }
    else:
        config = {
            "type": "audience_files",
            "directory": str(drill.workdir / "audiences"),
            "include_customer_id": True,
            "max_batch_size": 25,
        }
        binding = {
            "mode": "upsert",
            "channel": None,
            "fields": {"email": "email", "phone": "phone"},
            "campaign": "ads",
        }
    return {
        "db": str(drill.db),
        "destination": drill.kind,
        "config": config,
        "binding": {"segment": "segment", "relation": "marts.segment", "destination": drill.kind, **binding},
        "workers": workers,
        "flaky": drill.storm if drill.kind == "audience_files" else 0,
        "seed": drill.rng.randrange(1 << 30),
    }


def _run_child(drill: Drill, spec: dict[str, Any], kill: bool) -> dict[str, Any] | None:
    """One child run; with `kill`, SIGKILL at a random moment after it is ready to send. Returns the
    run's result, or None when it was killed."""
    env = {
        **os.environ,
        "DRILL_WEBHOOK_SECRET": SECRET,
        "DRILL_CRM_TOKEN": TOKEN,
        "TIDELINE_TRACKING_SECRET": "drill",
    }
    with (drill.workdir / "child.log").open("ab") as log:  # the runs' warnings (retries, timeouts)
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.drill", "--child", json.dumps(spec)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            text=True,
        )
    drill.runs += 1
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 120)
    line = proc.stdout.readline() if ready else ""
    if line.strip() != "ready":
        proc.kill()
        proc.wait()
        raise RuntimeError(f"{drill.kind}: the sync did not start (said {line!r})")
    if kill:
        deadline = time.monotonic() + drill.rng.uniform(*drill.kill_after)
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            drill.kills += 1
            return None
    out, _ = proc.communicate(timeout=600)
    if proc.returncode != 0:
        tail = (drill.workdir / "child.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{drill.kind}: a sync run failed (exit {proc.returncode}):\n{tail}")
    return json.loads(out.strip().splitlines()[-1])


def _round(drill: Drill, sink: Any, n: int, kills: int, finishing: int) -> None:
    """A new campaign or new field values, `kills` runs killed mid-run (a run that finishes first
    does not count; at most 5 tries per kill), then runs to the end."""
    _new_round(drill, n)
    target, tries = drill.kills + kills, 0
    while drill.kills < target and tries < 5 * kills:
        tries += 1
        _run_child(drill, _spec(drill, sink, n), kill=True)
        if drill.rng.random() < 0.5:
            _flip_consent(drill)
    for _ in range(finishing):  # to the end, without kills
        result = _run_child(drill, _spec(drill, sink, n), kill=False)
        assert result is not None
        held = result["skipped_by_reason"].get("retry_after", 0)
        if not (result["failed"] or result["released"] or result["sent"] or result["confirmed"] or held):
            break


# --- measuring ---------------------------------------------------------------------------------------


def _ledger(drill: Drill) -> tuple[dict[str, tuple[str, str]], dict[str, int]]:
    """{key: (customer, final status)} and the ledger's counters of reconciliation."""
    con = duckdb.connect(str(drill.db), read_only=True)
    try:
        final = {
            k: (c, s)
            for k, c, s in con.execute(
                "select cast(idempotency_key as varchar), customer_id, status from tideline_sync.delivery_ledger"
            ).fetchall()
        }
        seen, confirmed, released = con.execute(
            """select count(distinct idempotency_key) filter (where status = 'unknown'),
                      count(*) filter (where reason like 'confirmed delivered by %'),
                      count(*) filter (where status = 'released' and reason like 'not delivered according to %')
               from tideline_sync.delivery_log"""
        ).fetchone()
    finally:
        con.close()
    dead = sum(1 for _, s in final.values() if s == "dead_letter")
    return final, {"unknown_seen": seen, "confirmed": confirmed, "released": released, "dead_letters": dead}


def _measure_http(drill: Drill, sink: Any, final: dict[str, tuple[str, str]]) -> dict[str, int]:
    processed, received = sink.key_counts(), sink.received_key_counts()
    two_keys = 0
    if drill.kind == "webhook":  # one message per customer per campaign: one key each
        keys: dict[tuple[str, str], set[str]] = {}
        for request in sink.requests:
            if request.status == 200 and isinstance(request.body, dict):
                for record in request.body.get("records") or []:
                    keys.setdefault((record["customer_id"], request.body.get("campaign")), set()).add(
                        record["idempotency_key"]
                    )
        two_keys = sum(len(k) - 1 for k in keys.values())
    return {
        "duplicates": sum(n - 1 for n in processed.values()) + two_keys,
        "resent": sum(n - 1 for n in received.values()),
        "lost": sum(1 for k, (_, s) in final.items() if s == "sent" and k not in processed),
    }


def _measure_smtp(drill: Drill, sink: Any, final: dict[str, tuple[str, str]]) -> dict[str, int]:
    counts = sink.message_id_counts()
    arrived = {mid.strip("<>").split("@", 1)[0] for mid in counts}
    delivered = {k for k in final if k[:32] in arrived}
    return {
        "duplicates": sum(n - 1 for n in counts.values()),
        "resent": sum(n - 1 for n in counts.values()),
        "lost": sum(1 for k, (_, s) in final.items() if s == "sent" and k not in delivered),
        "unknown_delivered": sum(1 for k, (_, s) in final.items() if s == "unknown" and k in delivered),
    }


def _measure_audience(drill: Drill, final: dict[str, tuple[str, str]]) -> dict[str, int]:
    from activation.destinations.audience_files import normalize_email, normalize_phone, sha256_hex

    folders = [f for f in (drill.workdir / "audiences" / "segment").iterdir() if f.is_dir()]
    unfinished = [f for f in folders if any(f.glob("*-part-*.csv")) and not (f / "manifest.json").exists()]
    rows: Counter[tuple[str, ...]] = Counter()
    for folder in folders:
        if (folder / "add.csv").exists() and (folder / "manifest.json").exists():
            with (folder / "add.csv").open(newline="") as fh:
                rows.update(tuple(r) for r in list(csv.reader(fh))[1:])
    expected = set()
    for phones in drill.phones.values():  # every customer's row in every round
        for customer, phone in phones.items():
            email = sha256_hex(normalize_email(f"{customer}@example.com") or "")
            expected.add((customer, email, sha256_hex(normalize_phone(phone) or "")))
    missing = len(expected - set(rows))
    not_sent = sum(1 for _, s in final.values() if s != "sent")  # pending, dead or unknown: no row yet
    return {
        "duplicates": sum(n - 1 for n in rows.values()),
        "resent": sum(n - 1 for n in rows.values()),
        "lost": max(0, missing - not_sent),
        "unfinished_folders": len(unfinished),
    }


# --- one destination type ----------------------------------------------------------------------------


def drill_one(
    kind: str, *, kills: int, rounds: int, storm: float, customers: int, seed: int
) -> dict[str, Any]:
    from tideline.demo.sinks.http_sink import HttpSink
    from tideline.demo.sinks.smtp_sink import SmtpSink

    workdir = Path(tempfile.mkdtemp(prefix=f"tideline-drill-{kind}-"))
    drill = Drill(kind, workdir, customers, storm, random.Random(seed))
    started = time.monotonic()
    per_round = -(-kills // rounds)
    sink: Any = None
    try:
        _segment(drill)
        if kind in ("webhook", "crm"):
            sink = HttpSink(out_dir=workdir / "sink", secret=SECRET, token=TOKEN)
            sink.start()
            sink.storm(storm, seed=seed, hang_seconds=1.5, late_seconds=1.5, retry_after=1)
        elif kind == "smtp":
            sink = SmtpSink(out_dir=workdir / "outbox")
            sink.start()
            sink.storm(storm, seed=seed, late_seconds=1.0, hang_seconds=2.0)
            drill.kill_after = (0.05, 5.0)
        else:
            drill.kill_after = (0.05, 2.0)
        for n in range(1, rounds + 1):
            _round(drill, sink, n, per_round, finishing=10)
            print(f"  {kind}: round {n}/{rounds} done, {drill.kills} kills, {drill.runs} runs", flush=True)
        if sink is not None and kind == "smtp":
            time.sleep(2.5)  # held acknowledgements finish
        final, counters = _ledger(drill)
        if kind in ("webhook", "crm"):
            measured = _measure_http(drill, sink, final)
        elif kind == "smtp":
            measured = _measure_smtp(drill, sink, final)
        else:
            measured = _measure_audience(drill, final)
    finally:
        if sink is not None:
            sink.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    statuses = Counter(s for _, s in final.values())
    return {
        "destination": kind,
        "kills": drill.kills,
        "duplicates": measured.pop("duplicates"),
        "lost": measured.pop("lost"),
        "unknown": statuses.get("unknown", 0),
        "resent": measured.pop("resent"),
        **counters,
        "pending": statuses.get("failed", 0) + statuses.get("released", 0) + statuses.get("in_flight", 0),
        **measured,
        "records": len(final),
        "sent": statuses.get("sent", 0),
        "runs": drill.runs,
        "rounds": rounds,
        "customers": customers,
        "storm": storm,
        "seed": seed,
        "seconds": round(time.monotonic() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Kill syncs at random points under a fault storm.")
    parser.add_argument("--only", default=",".join(DESTINATIONS), help="comma-separated destination types")
    parser.add_argument("--kills", type=int, default=24, help="SIGKILLs per destination type")
    parser.add_argument("--rounds", type=int, default=8, help="campaigns (or field changes) per destination")
    parser.add_argument("--storm", type=float, default=0.3, help="share of requests that meet a fault")
    parser.add_argument("--customers", type=int, default=0, help="segment size (default per type)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(json.loads(args.child))
        return 0
    sizes = {"webhook": 800, "crm": 800, "smtp": 200, "audience_files": 800}
    rows = []
    for kind in [k.strip() for k in args.only.split(",") if k.strip()]:
        if kind not in DESTINATIONS:
            parser.error(f"--only: {kind!r} is not one of {', '.join(DESTINATIONS)}")
        print(
            f"drill {kind}: {args.kills} kills over {args.rounds} rounds, storm {args.storm:.0%}", flush=True
        )
        row = drill_one(
            kind,
            kills=args.kills,
            rounds=args.rounds,
            storm=args.storm,
            customers=args.customers or sizes[kind],
            seed=args.seed,
        )
        rows.append(row)
        print(
            f"  {kind}: kills {row['kills']}, duplicates {row['duplicates']}, lost {row['lost']}, "
            f"unknown {row['unknown']} (seen {row['unknown_seen']}, confirmed {row['confirmed']}, "
            f"released {row['released']}), resent {row['resent']}, pending {row['pending']}, "
            f"{row['runs']} runs in {row['seconds']}s",
            flush=True,
        )
    stamp = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "machine": f"{platform.machine()} {platform.python_version()} cpus={len(os.sched_getaffinity(0))}",
    }
    kept = json.loads(RESULTS.read_text()) if RESULTS.exists() else []  # other types' latest rows stay
    done = {row["destination"] for row in rows}
    merged = [r for r in kept if r.get("destination") not in done] + [{**row, **stamp} for row in rows]
    merged.sort(
        key=lambda r: DESTINATIONS.index(r["destination"]) if r["destination"] in DESTINATIONS else 99
    )
    RESULTS.write_text(json.dumps(merged, indent=2) + "\n")
    print(f"results: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
