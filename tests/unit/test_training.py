"""Training plan, the model against its baseline on data with a known signal, what happens when data
is too little or lacks whole sources, and the registry (approval and the data a model was trained on)."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import numpy as np
import pytest

from models_ml.features import FeatureSources
from models_ml.registry import ModelNotFound, ModelRegistry, data_identity
from models_ml.scoring import score_customers
from models_ml.training import (
    CHURN,
    PROPENSITY,
    InsufficientData,
    TrainedModel,
    TrainingConfig,
    not_trained_reason,
    plan_cutoffs,
    train_task,
)

SOURCES = FeatureSources(orders="orders", items="items", events="events", customers="customers")


def test_cutoff_plan_keeps_label_windows_apart() -> None:
    end = dt.date(2026, 10, 31)
    training, evaluation = plan_cutoffs(end, horizon_days=90, n_training=4, step_days=30)
    assert evaluation == dt.date(2026, 8, 2)  # its labels end on the last day of data
    assert training == [dt.date(2026, 5, 4), dt.date(2026, 4, 4), dt.date(2026, 3, 5), dt.date(2026, 2, 3)]
    for cutoff in training:  # every training label window ends on or before the evaluation cutoff
        assert cutoff + dt.timedelta(days=90) <= evaluation


def _synthetic_warehouse(n: int = 3000, seed: int = 1, events: bool = True) -> duckdb.DuckDBPyConnection:
    """Customers who browse recently buy again soon; recency alone carries only part of that signal.
    Without `events` the events table is empty, as in an orders-only landing zone."""
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
    if events:
        con.executemany("insert into events values (?, ?, ?, ?)", rows_e)
    return con


@pytest.fixture(scope="module")
def warehouse() -> duckdb.DuckDBPyConnection:
    return _synthetic_warehouse()


@pytest.mark.slow  # fits models on 3,000 synthetic customers
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
    with pytest.raises(InsufficientData) as caught:
        train_task(con, CHURN, TrainingConfig(training_cutoffs=2), SOURCES)
    reason = str(caught.value)
    # the data end on 2025-12-30: evaluation cutoff 90 days before, training cutoffs 90 and 120 before that
    assert reason.startswith(
        "not enough data at the 2 training cutoffs (2025-06-03 to 2025-07-03): 36 labelled rows"
    )
    assert "buyers active in the 365 days before the cutoff" in reason
    assert "(need at least 50, and 10 of each)" in reason and "the orders end on 2025-12-30" in reason


def _regulars_and_one_churner() -> duckdb.DuckDBPyConnection:
    """200 customers who buy every 20 days from 2024 to the end of 2025 (the last orders on 2025-12-31)
    and one who did the same until 2025-05-20 and then stopped."""
    con = duckdb.connect()
    con.execute(
        "create table customers as select 'r' || i as customer_id, timestamp '2024-01-01' as signed_up_at "
        "from range(200) t(i) union all select 'gone', timestamp '2024-01-01'"
    )
    con.execute(
        """create table orders as
           select 'r' || i as customer_id, day as ordered_at, 25.0 as amount, true as is_purchase,
                  false as used_coupon
           from range(200) t(i),
                unnest(generate_series(timestamp '2024-01-01' + to_days(cast(i % 20 as integer)),
                                       timestamp '2025-12-31', interval 20 day)) s(day)
           union all
           select 'gone', day, 25.0, true, false
           from unnest(generate_series(timestamp '2024-01-01', timestamp '2025-05-20', interval 20 day)) s(day)"""
    )
    con.execute(
        "create table items (customer_id varchar, ordered_at timestamp, is_purchase boolean, category varchar)"
    )
    con.execute(
        "create table events (customer_id varchar, event_type varchar, occurred_at timestamp, session_id varchar)"
    )
    return con


def test_one_outcome_too_rare_is_insufficient_data_not_a_crash() -> None:
    """Hundreds of rows with both outcomes, but only one customer who churned: 3-fold calibration used to
    crash on it (ValueError); now it is InsufficientData, saying how many of each outcome there were.
    By hand: data end 2025-12-31, evaluation cutoff 2025-10-02, training cutoffs 2025-07-04 and
    2025-06-04; 'gone' is a positive at both training cutoffs, everyone else bought again."""
    con = _regulars_and_one_churner()
    with pytest.raises(InsufficientData) as caught:
        train_task(con, CHURN, TrainingConfig(training_cutoffs=2), SOURCES)
    assert str(caught.value).startswith(
        "not enough data at the 2 training cutoffs (2025-06-04 to 2025-07-04): 402 labelled rows (buyers "
        "active in the 365 days before the cutoff), 2 with no purchase in the next 90 days, 400 who bought again "
        "(need at least 50, and 10 of each)"
    )


def test_not_trained_reason_words() -> None:
    assert not_trained_reason(InsufficientData("only 3 rows")) == "only 3 rows"
    assert not_trained_reason(ValueError("window shape")) == "training failed with ValueError: window shape"


@pytest.fixture(scope="module")
def orders_only() -> duckdb.DuckDBPyConnection:
    return _synthetic_warehouse(n=1500, seed=2, events=False)


@pytest.fixture(scope="module")
def orders_only_churn(orders_only) -> TrainedModel:
    return train_task(orders_only, CHURN, TrainingConfig(training_cutoffs=2, importance_rows=500), SOURCES)


@pytest.mark.slow  # fits a model on 1,500 synthetic customers
def test_empty_and_constant_features_are_left_out_and_named(orders_only_churn) -> None:
    """No events at all (an orders-only landing zone): the event features are empty or 0 for everyone.
    An all-empty column used to break the booster's binning ("window shape cannot be larger than input
    array shape"); now those columns are left out, named with the reason, and the model trains."""
    trained = orders_only_churn
    assert trained.dropped_features["days_since_last_event"] == "empty for every customer"
    assert trained.dropped_features["visits_30d"] == "0 for every customer"
    assert trained.dropped_features["category_breadth"] == "0 for every customer"  # no order items either
    assert set(trained.dropped_features) == {
        "visits_30d",
        "product_views_30d",
        "cart_adds_30d",
        "checkouts_30d",
        "app_opens_30d",
        "days_since_last_event",
        "category_breadth",
    }
    assert not set(trained.features) & set(trained.dropped_features)
    assert "days_since_last_purchase" in trained.features and "coupon_share" in trained.features
    assert trained.metadata()["features"] == list(trained.features)
    assert trained.metadata()["dropped_features"] == trained.dropped_features
    assert set(trained.importance["feature"]) == set(trained.features)


@pytest.mark.slow  # fits a model on 1,500 synthetic customers
def test_a_model_without_the_left_out_features_scores(orders_only, orders_only_churn, tmp_path) -> None:
    """Scoring gives the model the columns it was trained on, not all of FEATURES."""
    registry = ModelRegistry(tmp_path)
    identity = data_identity(tmp_path / "w.duckdb", tmp_path / "raw")
    trained = orders_only_churn
    saved = registry.save("churn", trained.model, trained.metadata(), trained_on=identity)
    scores, _ = score_customers(orders_only, dt.date(2025, 12, 31), saved, None, None, sources=SOURCES)
    churn = scores["churn_probability"]
    assert churn.notna().sum() > 100 and churn.dropna().between(0, 1).all()
    assert scores["purchase_propensity"].isna().all() and scores["predicted_clv"].isna().all()
    assert scores["model_version"].iloc[0] == saved.label


def test_registry_versions_and_approval(tmp_path) -> None:
    registry = ModelRegistry(tmp_path)
    mine = data_identity(tmp_path / "w.duckdb", tmp_path / "raw")
    with pytest.raises(ModelNotFound, match="no trained 'churn' model"):
        registry.load("churn", trained_on=mine)
    first = registry.save(
        "churn",
        {"w": 1},
        {"beats_baseline": True},
        trained_on=mine,
        now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )
    registry.save(
        "churn",
        {"w": 2},
        {"beats_baseline": False},
        trained_on=mine,
        now=dt.datetime(2026, 1, 8, tzinfo=dt.UTC),
    )
    assert (
        registry.load("churn", trained_on=mine).version == first.version
    )  # the newer one lost to its baseline
    assert registry.load("churn", approved_only=False, trained_on=mine).model == {"w": 2}
    metadata = json.loads((tmp_path / "churn" / first.version / "metadata.json").read_text())
    assert metadata["libraries"]["scikit-learn"] and metadata["trained_at"].startswith("2026-01-01")
    assert metadata["trained_on"] == mine
    assert first.version.startswith("20260101T000000Z-")


def test_a_model_trained_on_other_data_is_never_loaded(tmp_path) -> None:
    """The demo's models must not score a user's data: another warehouse, another raw dir (the same
    warehouse file reloaded from another landing zone), or no record at all is "no model"."""
    registry = ModelRegistry(tmp_path / "models")
    (tmp_path / "demo-raw").mkdir()
    demo = data_identity(tmp_path / "demo.duckdb", tmp_path / "demo-raw")
    registry.save("churn", {"w": "demo"}, {"beats_baseline": True}, trained_on=demo)
    for other in (
        data_identity(tmp_path / "mine.duckdb", tmp_path / "demo-raw"),
        data_identity(tmp_path / "demo.duckdb", tmp_path / "my-export"),
    ):
        with pytest.raises(ModelNotFound, match="was trained on other data") as caught:
            registry.load("churn", trained_on=other)
        assert str(tmp_path / "demo-raw") in str(caught.value) and "retrain on this data" in str(caught.value)
    with pytest.raises(ModelNotFound, match="was trained on other data"):  # an explicit version too
        registry.load(
            "churn", registry.versions("churn")[-1], trained_on=data_identity(tmp_path / "x", tmp_path)
        )
    # the same data through a relative path or a symlink is the same data
    (tmp_path / "link").symlink_to(tmp_path / "demo-raw", target_is_directory=True)
    same = data_identity(tmp_path / "demo.duckdb", tmp_path / "link")
    assert registry.load("churn", trained_on=same).model == {"w": "demo"}


def test_a_model_saved_before_trained_on_was_recorded_is_not_loaded(tmp_path) -> None:
    registry = ModelRegistry(tmp_path)
    saved = registry.save("clv", {"w": 1}, {"beats_baseline": True}, trained_on={"warehouse": "x"})
    path = tmp_path / "clv" / saved.version / "metadata.json"
    legacy = json.loads(path.read_text())
    del legacy["trained_on"]
    path.write_text(json.dumps(legacy))
    with pytest.raises(ModelNotFound, match="data Tideline did not record"):
        registry.load("clv", trained_on={"warehouse": "x"})
    assert registry.load("clv", trained_on=None).model == {"w": 1}  # for looking at artefacts only
