"""`tideline run` on a user's own files, end to end through Dagster, as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.helpers import write_csv
from tideline.settings import Settings

HOLDER = (
    "import sys, duckdb, time; con = duckdb.connect(sys.argv[1]); print('ready', flush=True); time.sleep(120)"
)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIDELINE_", "DAGSTER_HOME", "NO_COLOR"))}
    return {**env, **extra}


@pytest.mark.slow  # the CLI runs the whole pipeline in a subprocess
def test_orders_only_csv_gives_correct_rfm(tmp_path: Path) -> None:
    """Orders alone are enough. By hand, as of 2025-03-31 (3 buyers, so scores are 1 + floor(5*(rank-1)/3)):
    x: 2 orders 60+40=100, last 2025-03-30 -> recency 1;  y: 1 order 500, last 2025-01-30 -> 60;
    z: 3 orders 10+10+10=30, last 2024-12-31 -> 90 (an order with status refunded does not count).
    r (worst first: z, y, x): z 1, y 1+floor(5/3)=2, x 1+floor(10/3)=4
    f (y 1, x 2, z 3): y 1, x 2, z 4;  m (z 30, x 100, y 500): z 1, x 2, y 4
    fm: x floor((2+2+1)/2)=2 -> r4 fm2 Potential Loyalist; y floor(6/2)=3 -> r2 fm3 At Risk;
    z floor(6/2)=3 -> r1 fm3 At Risk.
    """
    raw = tmp_path / "my-export"
    write_csv(
        raw / "commerce/orders/orders.csv",
        [
            {"order_id": "1", "customer_id": "x", "ordered_at": "2025-03-01 10:00:00", "amount": "60"},
            {"order_id": "2", "customer_id": "x", "ordered_at": "2025-03-30 10:00:00", "amount": "40"},
            {"order_id": "3", "customer_id": "y", "ordered_at": "2025-01-30", "amount": "500"},
            {"order_id": "4", "customer_id": "z", "ordered_at": "2024-10-01", "amount": "10"},
            {"order_id": "5", "customer_id": "z", "ordered_at": "2024-11-01", "amount": "10"},
            {"order_id": "6", "customer_id": "z", "ordered_at": "2024-12-31", "amount": "10"},
            {
                "order_id": "7",
                "customer_id": "z",
                "ordered_at": "2025-03-15",
                "amount": "99",
                "status": "refunded",
            },
        ],
        ["order_id", "customer_id", "ordered_at", "amount", "status"],
    )
    home = tmp_path / "home"
    warehouse = tmp_path / "out" / "my.duckdb"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIDELINE_", "DAGSTER_HOME"))}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tideline.cli",
            "run",
            "--raw-dir",
            str(raw),
            "--as-of",
            "2025-03-31",
            "--warehouse",
            str(warehouse),
            "--home",
            str(home),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "Tideline summary — as of 2025-03-31" in done.stdout
    assert "Customers: 3 (3 buyers" in done.stdout

    con = duckdb.connect(str(warehouse), read_only=True)
    rows = con.execute(
        "select customer_id, recency_days, frequency, monetary, r_score, f_score, m_score, rfm_segment "
        "from marts.customer_rfm order by customer_id"
    ).fetchall()
    con.close()
    assert [(c, rd, f, float(m), r, fs, ms, seg) for c, rd, f, m, r, fs, ms, seg in rows] == [
        ("x", 1, 2, 100.0, 4, 2, 2, "Potential Loyalist"),
        ("y", 60, 1, 500.0, 2, 1, 4, "At Risk"),
        ("z", 90, 3, 30.0, 1, 4, 1, "At Risk"),
    ]
    # the run is recorded in the Dagster instance of that warehouse's own state folder
    state = Settings(home, warehouse, raw, "2025-03-31").state_dir
    assert state.parent == home / "warehouses" and (state / "dagster" / "dagster.yaml").exists()
    assert done.stdout.rstrip().splitlines()[-1] == f"Open in BI: {state / 'bi' / 'my.duckdb'}"


def test_bad_as_of_is_a_clear_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tideline.cli",
            "run",
            "--raw-dir",
            str(tmp_path),
            "--as-of",
            "31/03/2025",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "as-of date '31/03/2025' is not a date like 2026-01-31" in done.stderr


@pytest.mark.slow
def test_a_failing_run_says_what_why_where_and_what_to_do_in_one_paragraph(tmp_path: Path) -> None:
    """No orders at all: the blocking check stops the run; no traceback, no cascade, no escape codes."""
    raw = tmp_path / "export"
    write_csv(raw / "crm/contacts/contacts.csv", [{"customer_id": "c1", "email": "a@example.com"}])
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tideline.cli",
            "run",
            "--raw-dir",
            str(raw),
            "--home",
            str(tmp_path / "h"),
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=900,
    )
    assert done.returncode == 1
    output = done.stdout + done.stderr
    for noise in ("Traceback", "Not executing", "failed: None", "\x1b", "dagster - ERROR"):
        assert noise not in output, noise
    paragraphs = [line for line in done.stderr.splitlines() if line.startswith("Tideline stopped: ")]
    assert len(paragraphs) == 1, done.stderr
    paragraph = paragraphs[0]
    assert "the check orders_present on landing/commerce_orders failed: no order rows" in paragraph
    log = Path(paragraph.split("Full log: ")[1].split(". What to do: ")[0])
    assert log.exists() and log.parent == tmp_path / "h" / "logs"
    assert (
        f"What to do: put at least one orders file (CSV, Parquet or JSON Lines) under {raw / 'commerce' / 'orders'}"
        in (paragraph)
    )
    assert [line for line in done.stdout.splitlines() if line.startswith("  ✗ ")] == [
        line for line in done.stdout.splitlines() if "check orders_present on landing/commerce_orders" in line
    ]


@pytest.mark.slow  # two Python processes and the lock wait
def test_a_warehouse_locked_by_another_process_fails_in_one_sentence_after_the_wait(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    warehouse = home / "warehouse.duckdb"
    raw = tmp_path / "export"
    raw.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(warehouse)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        done = subprocess.run(
            [sys.executable, "-m", "tideline.cli", "run", "--raw-dir", str(raw), "--home", str(home)],
            capture_output=True,
            text=True,
            env=clean_env(TIDELINE_LOCK_WAIT_SECONDS="2"),
            timeout=300,
        )
    finally:
        holder.kill()
        holder.wait(timeout=10)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "Could not set lock" not in done.stderr
    assert f"Waiting: the warehouse {warehouse} is locked by another process, PID {holder.pid}" in done.stdout
    assert done.stderr.strip() == (
        f"tideline: The warehouse {warehouse} is locked by another process, PID {holder.pid} "
        f"({Path(sys.executable).resolve().name}), and was still locked after 2s: close that program's "
        f"connection to it (BI tools should open {home / 'bi' / 'warehouse.duckdb'}, the copy after "
        "'Open in BI:') and run again, or wait longer with TIDELINE_LOCK_WAIT_SECONDS."
    )
