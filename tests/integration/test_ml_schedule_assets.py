"""The model and scoring assets through Dagster on a real warehouse file: the first run trains and
scores, a rerun reuses the models (their stored evaluation still checked against the baseline) and
leaves ml.customer_scores byte for byte as it was, and `retrain` trains again and rescores."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from orchestration.ml import (
    CHURN_KEY,
    CLV_KEY,
    PROPENSITY_KEY,
    SCORES_KEY,
    churn_model,
    clv_model,
    customer_scores,
    propensity_model,
    retrain_run_config,
)
from orchestration.resources import MLSettings, PipelineSettings, WarehouseResource

pytestmark = pytest.mark.slow  # trains three models on 800 synthetic customers, twice


def _warehouse(path: Path, n: int = 800, seed: int = 5) -> None:
    """The dbt tables the features read, with a signal: engaged customers browse, then buy often."""
    rng = np.random.default_rng(seed)
    signup = np.datetime64("2024-01-01") + rng.integers(0, 200, n).astype("timedelta64[D]")
    engaged = rng.uniform(size=n) < 0.4
    orders, items, events = [], [], []
    for i in range(n):
        t, rate = signup[i], (1 / 25 if engaged[i] else 1 / 120)
        while (t := t + np.timedelta64(int(rng.exponential(1 / rate)) + 1, "D")) <= np.datetime64(
            "2025-12-31"
        ):
            orders.append((f"c{i}", str(t), float(rng.gamma(2, 30)), True, bool(rng.uniform() < 0.2)))
            items.append((f"c{i}", str(t), True, f"cat{i % 4}"))
            if engaged[i]:
                events.append((f"c{i}", "product_view", str(t - np.timedelta64(3, "D")), f"s{i}-{t}"))
    con = duckdb.connect(str(path))
    con.execute("create schema intermediate; create schema marts")
    con.execute("create table marts.dim_customers (customer_id varchar, signed_up_at timestamp)")
    con.executemany(
        "insert into marts.dim_customers values (?, ?)", [(f"c{i}", str(signup[i])) for i in range(n)]
    )
    con.execute(
        "create table intermediate.int_orders_resolved (customer_id varchar, ordered_at timestamp, "
        "amount double, is_purchase boolean, used_coupon boolean)"
    )
    con.executemany("insert into intermediate.int_orders_resolved values (?, ?, ?, ?, ?)", orders)
    con.execute(
        "create table intermediate.int_order_items_joined (customer_id varchar, ordered_at timestamp, "
        "is_purchase boolean, category varchar)"
    )
    con.executemany("insert into intermediate.int_order_items_joined values (?, ?, ?, ?)", items)
    con.execute(
        "create table intermediate.int_events_stitched (customer_id varchar, event_type varchar, "
        "occurred_at timestamp, session_id varchar)"
    )
    con.executemany("insert into intermediate.int_events_stitched values (?, ?, ?, ?)", events)
    con.close()


def _materialize(tmp_path: Path, run_config: dict | None = None) -> dg.ExecuteInProcessResult:
    resources = {
        "warehouse": WarehouseResource(path=str(tmp_path / "w.duckdb")),
        "pipeline": PipelineSettings(raw_dir=str(tmp_path / "raw"), as_of="2026-01-01"),
        "ml": MLSettings(models_dir=str(tmp_path / "models"), training_cutoffs=1),
    }
    with threadpool_limits(1):  # OpenMP on every core of a busy machine only slows the small fits
        return dg.materialize(
            [churn_model, propensity_model, clv_model, customer_scores],
            resources=resources,
            run_config=run_config or {},
            raise_on_error=True,
        )


def _metadata(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict:
    (materialization,) = [m for m in result.get_asset_materialization_events() if m.asset_key == key]
    return {k: v.value for k, v in materialization.materialization.metadata.items()}


def _checks(result: dg.ExecuteInProcessResult) -> dict:
    return {(e.asset_key, e.check_name): e.passed for e in result.get_asset_check_evaluations()}


def _scores(tmp_path: Path) -> list[tuple]:
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        return con.execute("select * from ml.customer_scores order by customer_id").fetchall()


def test_a_rerun_reuses_models_and_scores_and_retrain_trains_again(tmp_path) -> None:
    _warehouse(tmp_path / "w.duckdb")
    first = _materialize(tmp_path)
    trained = {key: _metadata(first, key) for key in (CHURN_KEY, PROPENSITY_KEY, CLV_KEY)}
    for meta in trained.values():
        assert meta["training"] == "trained: no model trained on this data yet"
    assert trained[CHURN_KEY]["training_rows"] <= trained[CHURN_KEY]["training_rows_available"]
    assert "reused" not in _metadata(first, SCORES_KEY)
    scores = _scores(tmp_path)
    assert len(scores) == 800

    again = _materialize(tmp_path)
    for key, before in trained.items():
        meta = _metadata(again, key)
        assert meta["training"].startswith("reused: trained ") and meta["version"] == before["version"]
        assert {k: v for k, v in meta.items() if k != "training"} == {
            k: v for k, v in before.items() if k != "training"
        }  # the stored evaluation, shown as when it was trained
    assert _checks(again) == _checks(first)  # beats_baseline judged on the stored evaluation
    reused = _metadata(again, SCORES_KEY)
    assert reused["reused"].startswith(f"inputs unchanged since run {first.run_id} at ")
    assert reused["dagster/row_count"] == 800
    assert _scores(tmp_path) == scores  # scored_at included: the table was not rewritten

    retrained = _materialize(tmp_path, retrain_run_config())
    for key, before in trained.items():
        meta = _metadata(retrained, key)
        assert meta["training"] == "trained: retrain asked for" and meta["version"] != before["version"]
    assert "reused" not in _metadata(retrained, SCORES_KEY)  # new model versions: rescored
    assert _scores(tmp_path) != scores
