"""Training plan, the model against its baseline on data with a known signal, and the registry."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import numpy as np
import pytest

from models_ml.features import FeatureSources
from models_ml.registry import ModelNotFound, ModelRegistry
from models_ml.training import CHURN, PROPENSITY, InsufficientData, TrainingConfig, plan_cutoffs, train_task

SOURCES = FeatureSources(orders="orders", items="items", events="events", customers="customers")


def test_cutoff_plan_keeps_label_windows_apart() -> None:
    end = dt.date(2026, 10, 31)
    training, evaluation = plan_cutoffs(end, horizon_days=90, n_training=4, step_days=30)
    assert evaluation == dt.date(2026, 8, 2)  # its labels end on the last day of data
    assert training == [dt.date(2026, 5, 4), dt.date(2026, 4, 4), dt.date(2026, 3, 5), dt.date(2026, 2, 3)]
    for cutoff in training:  # every training label window ends on or before the evaluation cutoff
        assert cutoff + dt.timedelta(days=90) <= evaluation


def _synthetic_warehouse(n: int = 3000, seed: int = 1) -> duckdb.DuckDBPyConnection:
    """Customers who browse recently buy again soon; recency alone carries only part of that signal."""
    rng = np.random.default_rng(seed)
    con = duckdb.connect()
    start = np.datetime64("2024-01-01")
    signup = start + rng.integers(0, 200, n).astype("timedelta64[D]")
    engaged = rng.uniform(size=n) < 0.4
    rows_o, rows_e = [], []
    for i in range(n):
        t = signup[i]
        rate = 1 / 25 if engaged[i] else 1 / 120  # purchases per day
        while True:
            t = t + np.timedelta64(int(rng.exponential(1 / rate)) + 1, "D")
            if t > np.datetime64("2025-12-31"):
                break
            rows_o.append((f"c{i}", str(t), float(rng.gamma(2, 30)), True, bool(rng.uniform() < 0.2)))
            if engaged[i]:  # engaged customers browse a few days before buying
                rows_e.append((f"c{i}", "product_view", str(t - np.timedelta64(3, "D")), f"s{i}-{t}"))
    con.execute(
        "create table customers as select * from (values "
        + ",".join(f"('c{i}', timestamp '{signup[i]}')" for i in range(n))
        + ") t(customer_id, signed_up_at)"
    )
    con.execute(
        "create table orders (customer_id varchar, ordered_at timestamp, amount double, is_purchase boolean, "
        "used_coupon boolean)"
    )
    con.executemany("insert into orders values (?, ?, ?, ?, ?)", rows_o)
    con.execute(
        "create table items (customer_id varchar, ordered_at timestamp, is_purchase boolean, category varchar)"
    )
    con.execute(
        "create table events (customer_id varchar, event_type varchar, occurred_at timestamp, session_id varchar)"
    )
    con.executemany("insert into events values (?, ?, ?, ?)", rows_e)
    return con


@pytest.fixture(scope="module")
def warehouse() -> duckdb.DuckDBPyConnection:
    return _synthetic_warehouse()


@pytest.mark.parametrize("task", [CHURN, PROPENSITY], ids=["churn", "propensity"])
def test_model_beats_recency_baseline_on_held_out_cutoff(warehouse, task) -> None:
    trained = train_task(warehouse, task, TrainingConfig(training_cutoffs=3, importance_rows=2000), SOURCES)
    assert trained.evaluation_cutoff == dt.date(2025, 12, 31) - dt.timedelta(days=task.horizon_days)
    assert max(trained.training_cutoffs) + dt.timedelta(days=task.horizon_days) <= trained.evaluation_cutoff
    assert trained.beats_baseline, (trained.metrics, trained.baseline_metrics)
    assert trained.metrics.roc_auc > 0.7
    assert trained.lift.loc[0, "lift"] > 1.2
    assert set(trained.importance["feature"]) >= {"days_since_last_purchase", "product_views_30d"}
    probabilities = trained.model.predict_proba(np.zeros((1, len(trained.features))))[:, 1]
    assert 0 <= probabilities[0] <= 1


def test_too_little_history_is_a_clear_insufficient_data_error() -> None:
    con = _synthetic_warehouse(n=20)
    with pytest.raises(InsufficientData, match="not enough"):
        train_task(con, CHURN, TrainingConfig(training_cutoffs=2), SOURCES)


def test_registry_versions_and_approval(tmp_path) -> None:
    registry = ModelRegistry(tmp_path)
    with pytest.raises(ModelNotFound, match="no trained 'churn' model"):
        registry.load("churn")
    first = registry.save(
        "churn", {"w": 1}, {"beats_baseline": True}, now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    )
    registry.save("churn", {"w": 2}, {"beats_baseline": False}, now=dt.datetime(2026, 1, 8, tzinfo=dt.UTC))
    assert registry.load("churn").version == first.version  # the newer one lost to its baseline
    assert registry.load("churn", approved_only=False).model == {"w": 2}
    metadata = json.loads((tmp_path / "churn" / first.version / "metadata.json").read_text())
    assert metadata["libraries"]["scikit-learn"] and metadata["trained_at"].startswith("2026-01-01")
    assert first.version.startswith("20260101T000000Z-")
