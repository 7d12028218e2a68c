"""`tideline run` as a subprocess on an orders-only CSV with zero-amount orders and no events (the
awkward data of test_awkward_data.py): it completes, scores what can be scored, builds the tags and
segments and prints the summary; then a 12-customer export into the same warehouse and home is not
scored by the first export's models.

A file of its own (two pipeline runs, the longest test of the suite): pytest-xdist's loadfile keeps a
file on one worker, so apart from the warehouse builds of test_awkward_data.py it runs beside them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from models_ml.registry import data_identity
from tests.e2e.test_awkward_data import AS_OF, EVENT_FEATURES, ORDER_COLUMNS, shop_orders
from tests.helpers import NO_DBT_UNIT_TESTS, write_csv


def write_orders_only(raw: Path, customers: int = 400) -> list[dict]:
    """The done-when landing zone: one orders CSV and nothing else (no events, no CRM), with zero-amount
    orders, a customer whose orders are all free, and a refund written as a negative amount."""
    rows = shop_orders(customers, zero_share=0.08)
    n = len(rows)
    rows += [
        {"order_id": str(n + 1), "customer_id": "9001", "ordered_at": "2025-06-01", "amount": "0"},
        {"order_id": str(n + 2), "customer_id": "9001", "ordered_at": "2025-09-01", "amount": "0.00"},
        {"order_id": str(n + 3), "customer_id": "1000", "ordered_at": "2025-12-01", "amount": "-25.00"},
    ]
    write_csv(raw / "commerce/orders/orders.csv", rows, ORDER_COLUMNS)
    return rows


# --------------------------------------------------------------------------------------------
# done when: `tideline run` on an orders-only CSV completes, scores what it can and says the rest
# --------------------------------------------------------------------------------------------


def tideline_run(raw: Path, warehouse: Path, home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIDELINE_", "DAGSTER_HOME"))}
    env.update(NO_DBT_UNIT_TESTS)  # tests/helpers.py: the unit tests pass or fail the same on any data
    command = [sys.executable, "-m", "tideline.cli", "run", "--raw-dir", str(raw), "--as-of", str(AS_OF)]
    command += ["--warehouse", str(warehouse), "--home", str(home)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=1200)


@pytest.mark.slow
def test_tideline_run_on_orders_only_then_on_other_data(tmp_path: Path) -> None:
    """1. An orders-only CSV (no events, no CRM) with zero-amount orders: the run used to fail (the
    booster's binning on the empty days_since_last_event, Gamma-Gamma on zero spend) and leave no tags,
    segments, syncs or summary. Now it completes, leaves the empty features out and says which, scores
    every customer, and builds the tags and segments.
    2. Then a 12-customer export into the same warehouse file and home: too little to train, and the
    first export's approved models (still on disk) must not score it. The summary says none were scored
    and why, instead of "12 customers scored"."""
    raw, warehouse, home = tmp_path / "export", tmp_path / "out" / "shop.duckdb", tmp_path / "home"
    rows = write_orders_only(raw)
    done = tideline_run(raw, warehouse, home)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert "window shape" not in done.stderr and "monetary_value must be positive" not in done.stderr
    assert "Customers: 401 (401 buyers" in out
    scores_section = out[out.index("Predictive scores:") : out.index("Activation (latest run)")]
    assert scores_section.startswith("Predictive scores: 401 customers scored; ")
    lines = scores_section.splitlines()
    assert lines[2].startswith("  churn       ROC AUC ")
    assert lines[3].startswith("              left out (empty or constant for everyone): ")
    assert all(feature in lines[3] for feature in EVENT_FEATURES)  # the features of the missing events
    assert any(line.startswith("  clv         held-out purchases MAE ") for line in lines)
    assert any(line.startswith("  propensity  ROC AUC ") for line in lines)
    assert "Top tags" in out and "Rejected input: 1 " in out

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        assert con.execute("select count(*) from ml.customer_scores").fetchone()[0] == 401
        free = con.execute(
            "select predicted_clv, purchase_propensity from ml.customer_scores where customer_id = '9001'"
        )
        clv_9001, propensity_9001 = free.fetchone()
        assert clv_9001 is None and propensity_9001 is not None  # only free orders: no lifetime value
        runs = con.execute(
            "select model, status, dropped_features from ml.model_runs order by model"
        ).fetchall()
        assert [(m, s) for m, s, _ in runs] == [
            ("churn", "approved"),
            ("clv", "approved"),
            ("propensity", "approved"),
        ]
        assert '"days_since_last_event": "empty for every customer"' in runs[0][2]
        assert con.execute("select count(*) from marts.customer_tags").fetchone()[0] > 0
        top_decile = con.execute("select count(*) from marts.high_propensity_buyers").fetchone()[0]
        assert 30 <= top_decile <= 45  # the top 10% of 401 (ties aside)
        syncs = dict(con.execute("select sync_key, segment_rows from tideline_sync.sync_runs").fetchall())
        assert syncs["high_propensity_buyers__crm"] == top_decile
        negative = con.execute(
            "select source_row, reason from marts.rejects where entity = 'commerce_orders'"
        ).fetchall()
        assert negative == [(len(rows), "amount -25.00 is negative")]
    finally:
        con.close()

    other = tmp_path / "my-export"
    write_csv(other / "commerce/orders/orders.csv", shop_orders(12, seed=5), ORDER_COLUMNS)
    done = tideline_run(other, warehouse, home)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert "Customers: 12 (12 buyers" in out
    assert "customers scored" not in out
    assert "Predictive scores: none" in out
    for name in ("churn", "clv", "propensity"):
        assert f"  {name:<11} not trained: not enough data" in out
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        assert con.execute("select count(*) from ml.customer_scores").fetchone()[0] == 0
        assert con.execute("select count(*) from marts.high_propensity_buyers").fetchone()[0] == 0
        assert con.execute("select count(*) from marts.customer_tags").fetchone()[0] > 0
    finally:
        con.close()
    # the first export's approved models were there to be (wrongly) used: only trained_on kept them out
    first = data_identity(warehouse, raw)
    approved = [p for p in home.rglob("churn/*/metadata.json") if '"beats_baseline": true' in p.read_text()]
    assert approved and all(str(first["raw_dir"]) in p.read_text() for p in approved)
