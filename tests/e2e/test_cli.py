"""`tideline run` on a user's own files, end to end through Dagster, as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb

from tests.helpers import write_csv


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
            "orchestration.cli",
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
    assert (home / "dagster" / "dagster.yaml").exists()  # the run is recorded in the Dagster instance


def test_bad_as_of_is_a_clear_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestration.cli",
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
