"""Models are trained on a schedule and reused while fresh; the training sample is capped and
stratified; scoring is skipped while nothing it reads changed. Real warehouses (in-memory DuckDB)
and a real registry on disk; the training itself is a counted stand-in, so each test is fast."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pytest

from models_ml.features import FeatureSources
from models_ml.registry import ModelRegistry, data_identity
from models_ml.runs import score_unless_unchanged, train_on_schedule
from models_ml.schedule import Schedule
from models_ml.training import InsufficientData, sample_rows
from tideline.fingerprint import table_fingerprints

SOURCES = FeatureSources(orders="orders", items="items", events="events", customers="customers")
NOW = dt.datetime(2026, 11, 2, 6, 0, tzinfo=dt.UTC)
SETTINGS = {"horizon_days": 90, "max_training_rows": 200_000}
AS_OF = dt.date(2025, 6, 30)


@pytest.fixture
def shop() -> duckdb.DuckDBPyConnection:
    """Three customers: 'a' bought twice (active), 'b' once long ago, 'p' never (a prospect)."""
    con = duckdb.connect()
    con.execute("create table customers (customer_id varchar, signed_up_at timestamp)")
    con.execute("insert into customers values ('a', '2025-01-01'), ('b', '2023-01-01'), ('p', '2025-05-01')")
    con.execute(
        "create table orders (customer_id varchar, ordered_at timestamp, amount double, is_purchase boolean, "
        "used_coupon boolean)"
    )
    con.execute(
        "insert into orders values ('a', '2025-02-01', 30, true, false), ('a', '2025-06-01', 50, true, false), "
        "('b', '2023-02-01', 20, true, false)"
    )
    con.execute(
        "create table items (customer_id varchar, ordered_at timestamp, is_purchase boolean, category varchar)"
    )
    con.execute(
        "create table events (customer_id varchar, event_type varchar, occurred_at timestamp, session_id varchar)"
    )
    return con


@dataclass
class _Trained:
    """What a training returns (models_ml.runs.Trained), for a model whose window ends on `end`."""

    end: dt.date
    beats_baseline: bool = True
    status: str = "approved"
    reason: str | None = None

    def metadata(self) -> dict:
        return {
            "training_window_end": str(self.end),
            "beats_baseline": self.beats_baseline,
            "status": self.status,
            "metrics": {"roc_auc": 0.81},
            "baseline_metrics": {"roc_auc": 0.7},
        }


@dataclass
class _Trainer:
    """Counts trainings; each returns a model whose window ends on the warehouse's last purchase day."""

    con: duckdb.DuckDBPyConnection
    calls: list[dt.date] = field(default_factory=list)

    def __call__(self) -> _Trained:
        end = self.con.execute("select max(cast(ordered_at as date)) from orders").fetchone()[0]
        self.calls.append(end)
        return _Trained(end)


@pytest.fixture
def registry(tmp_path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "models")


@pytest.fixture
def mine(tmp_path) -> dict[str, str]:
    return data_identity(tmp_path / "w.duckdb", tmp_path / "raw")


def _run(shop, registry, mine, trainer, *, now=NOW, settings=SETTINGS, schedule=None):
    return train_on_schedule(
        shop,
        "churn",
        trainer,
        lambda trained: {"window": str(trained.end)},
        registry,
        mine,
        settings,
        schedule or Schedule(retrain_every_days=7),
        now=now,
        sources=SOURCES,
    )


def test_a_rerun_reuses_the_fresh_model_with_its_stored_evaluation(shop, registry, mine) -> None:
    trainer = _Trainer(shop)
    first = _run(shop, registry, mine, trainer, now=NOW)
    again = _run(shop, registry, mine, trainer, now=NOW + dt.timedelta(hours=5))
    assert len(trainer.calls) == 1
    assert not first.reused and first.why == "no model trained on this data yet"
    assert again.reused and again.saved is not None and again.saved.version == first.saved.version
    assert again.why.startswith(f"trained {NOW:%Y-%m-%d %H:%M} UTC (5 hours ago), retrained every 7 days")
    assert (again.status, again.saved.metadata["metrics"]) == ("approved", {"roc_auc": 0.81})
    assert registry.versions("churn") == [first.saved.version]
    # a reuse is no training attempt: ml.model_runs lists the one training
    assert shop.execute("select count(*) from ml.model_runs").fetchone()[0] == 1


def test_a_model_as_old_as_the_schedule_is_retrained(shop, registry, mine) -> None:
    trainer = _Trainer(shop)
    _run(shop, registry, mine, trainer, now=NOW)
    young = _run(shop, registry, mine, trainer, now=NOW + dt.timedelta(days=6, hours=23))
    assert young.why.startswith(f"trained {NOW:%Y-%m-%d %H:%M} UTC (6 days ago)")
    minute = _run(shop, registry, mine, trainer, now=NOW + dt.timedelta(seconds=61))
    assert minute.why.startswith(f"trained {NOW:%Y-%m-%d %H:%M} UTC (1 minute ago)")
    old = _run(shop, registry, mine, trainer, now=NOW + dt.timedelta(days=7))
    assert young.reused and not old.reused
    assert old.why == "it is 7 days old (retrained every 7 days)"
    assert len(trainer.calls) == 2 and len(registry.versions("churn")) == 2
    every_run = _run(
        shop, registry, mine, trainer, now=NOW + dt.timedelta(days=7, minutes=1), schedule=Schedule(0)
    )
    assert not every_run.reused and len(trainer.calls) == 3


def test_changed_settings_or_features_retrain(shop, registry, mine) -> None:
    trainer = _Trainer(shop)
    _run(shop, registry, mine, trainer)
    later = NOW + dt.timedelta(hours=1)
    changed = _run(shop, registry, mine, trainer, now=later, settings={**SETTINGS, "horizon_days": 60})
    assert not changed.reused and changed.why == "its settings or feature set changed since it was trained"
    same_again = _run(shop, registry, mine, trainer, now=later, settings={**SETTINGS, "horizon_days": 60})
    assert same_again.reused and len(trainer.calls) == 2


def test_retrain_asked_for_trains_a_fresh_model(shop, registry, mine) -> None:
    trainer = _Trainer(shop)
    _run(shop, registry, mine, trainer)
    asked = _run(
        shop, registry, mine, trainer, now=NOW + dt.timedelta(hours=1), schedule=Schedule(7, retrain=True)
    )
    assert not asked.reused and asked.why == "retrain asked for" and len(trainer.calls) == 2


def test_data_moving_past_the_window_or_back_before_it_retrains(shop, registry, mine) -> None:
    trainer = _Trainer(shop)
    hour = dt.timedelta(hours=1)
    _run(shop, registry, mine, trainer)  # window ends 2025-06-01
    shop.execute("insert into orders values ('a', '2025-06-05', 10, true, false)")
    assert _run(shop, registry, mine, trainer, now=NOW + hour).reused  # 4 days of new data: still fresh
    shop.execute("insert into orders values ('a', '2025-06-08', 10, true, false)")
    moved = _run(shop, registry, mine, trainer, now=NOW + 2 * hour)
    assert moved.why == "the data now ends on 2025-06-08, 7 days after its training window (2025-06-01)"
    shop.execute("delete from orders where ordered_at >= '2025-06-01'")  # rebuilt as of an earlier day
    back = _run(shop, registry, mine, trainer, now=NOW + 3 * hour)
    assert back.why == (
        "the data now ends on 2025-02-01, before its training window (2025-06-08): it saw later data"
    )
    assert trainer.calls == [dt.date(2025, 6, 1), dt.date(2025, 6, 8), dt.date(2025, 2, 1)]


def test_a_model_of_other_data_or_without_recorded_settings_is_not_reused(
    shop, registry, mine, tmp_path
) -> None:
    trainer = _Trainer(shop)
    other = data_identity(tmp_path / "other.duckdb", tmp_path / "raw")
    registry.save(
        "churn", {}, {"training_window_end": "2025-06-01"}, trained_on=mine, now=NOW
    )  # older Tideline
    registry.save("churn", {}, {"settings_hash": "x"}, trained_on=other, now=NOW)
    outcome = _run(shop, registry, mine, trainer)
    assert outcome.why == "the model does not record its settings (saved by an earlier Tideline)"
    assert len(trainer.calls) == 1


def test_no_orders_table_or_an_unreadable_model_is_a_training_not_a_crash(shop, registry, mine) -> None:
    trainer = _Trainer(shop)
    saved = _run(shop, registry, mine, trainer).saved
    (registry.root / "churn" / saved.version / "metadata.json").write_text("{not json")
    unreadable = _run(shop, registry, mine, trainer, now=NOW + dt.timedelta(hours=1))
    assert not unreadable.reused and unreadable.why.startswith(
        "the saved model could not be read (JSONDecodeError"
    )
    shop.execute("drop table orders")
    missing = _run(shop, registry, mine, _fails_to_train, now=NOW + dt.timedelta(hours=2))
    assert (missing.status, missing.reason) == ("not_trained", "no purchases in the warehouse")


def _fails_to_train() -> _Trained:
    raise InsufficientData("no purchases in the warehouse")


# --- the training sample -------------------------------------------------------------------------


def test_the_training_sample_is_capped_stratified_and_deterministic() -> None:
    rng = np.random.default_rng(3)
    groups = np.repeat([1, 2, 3], [50_000, 30_000, 20_000])
    y = (rng.uniform(size=len(groups)) < np.where(groups == 3, 0.5, 0.05)).astype(int)
    keep = sample_rows(y, groups, 10_000, seed=42)
    assert keep.sum() == 10_000
    for g in (1, 2, 3):
        for label in (0, 1):
            stratum = (groups == g) & (y == label)
            assert abs(keep[stratum].sum() - 10_000 * stratum.sum() / len(y)) < 1
    assert np.array_equal(keep, sample_rows(y, groups, 10_000, seed=42))
    assert not np.array_equal(keep, sample_rows(y, groups, 10_000, seed=7))
    assert sample_rows(y[:500], groups[:500], 10_000, seed=42).all()  # under the cap: every row


# --- scoring only when its inputs changed --------------------------------------------------------


class _Fixed:
    def __init__(self, p: float):
        self.p = p

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.column_stack([np.full(len(x), 1 - self.p), np.full(len(x), self.p)])


def _score(shop, registry, mine, run_id: str, as_of: dt.date = AS_OF):
    return score_unless_unchanged(
        shop,
        registry,
        mine,
        as_of,
        run_id=run_id,
        now=NOW + dt.timedelta(minutes=len(run_id)),
        sources=SOURCES,
        fingerprints=table_fingerprints,
    )


def _table(con, name: str) -> list[tuple]:
    return con.execute(f"select * from ml.{name} order by all").fetchall()


def test_unchanged_inputs_leave_the_scores_as_they_were(shop, registry, mine) -> None:
    registry.save(
        "churn",
        _Fixed(0.7),
        {"beats_baseline": True, "features": ["days_since_last_purchase"]},
        trained_on=mine,
    )
    first = _score(shop, registry, mine, "run-1")
    assert first.reused is None and len(first.scores) == 3
    scores, models = _table(shop, "customer_scores"), _table(shop, "score_models")
    again = _score(shop, registry, mine, "run-two")  # another time: a rescore would change scored_at
    assert again.reused is not None and again.reused.run_id == "run-1"
    assert _table(shop, "customer_scores") == scores and _table(shop, "score_models") == models


@pytest.mark.parametrize(
    "change",
    [
        "insert into orders values ('p', '2025-06-20', 15, true, false)",
        "update customers set signed_up_at = '2024-12-01' where customer_id = 'a'",
        "insert into events values ('b', 'page_view', '2025-06-29', 's1')",
        "delete from ml.customer_scores where customer_id = 'a'",  # the scores changed by hand
        "new model",
        "new as-of",
    ],
)
def test_a_changed_input_is_rescored(shop, registry, mine, change) -> None:
    meta = {"beats_baseline": True, "features": ["days_since_last_purchase"]}
    registry.save("churn", _Fixed(0.7), meta, trained_on=mine, now=NOW)
    _score(shop, registry, mine, "run-1")
    as_of = AS_OF
    if change == "new model":
        registry.save("churn", _Fixed(0.4), meta, trained_on=mine, now=NOW + dt.timedelta(days=1))
    elif change == "new as-of":
        as_of = AS_OF + dt.timedelta(days=1)
    else:
        shop.execute(change)
    again = _score(shop, registry, mine, "run-two", as_of)
    assert again.reused is None
    assert shop.execute("select count(*) from ml.customer_scores").fetchone()[0] == 3
    assert shop.execute("select run_id from ml.score_inputs").fetchall() == [("run-two",)]
    assert _score(shop, registry, mine, "run-three", as_of).reused.run_id == "run-two"


# --- asking for a retrain ------------------------------------------------------------------------


def test_retrain_reaches_every_model_asset_from_the_cli_and_the_retrain_job(tmp_path) -> None:
    import dagster as dg

    from orchestration.definitions import build_definitions
    from orchestration.ml import retrain_run_config
    from tideline.cli import build_parser
    from tideline.settings import Settings

    assert build_parser().parse_args(["run", "--raw-dir", "raw", "--retrain"]).retrain
    assert not build_parser().parse_args(["run", "--raw-dir", "raw"]).retrain
    defs = build_definitions(Settings(tmp_path, tmp_path / "w.duckdb", tmp_path, "2026-01-01"))
    asked = retrain_run_config()
    resolved = dg.validate_run_config(defs.resolve_job_def("tideline_pipeline"), asked)
    for op in ("ml__churn_model", "ml__propensity_model", "ml__clv_model"):
        assert resolved["ops"][op]["config"] == {"retrain": True}
    assert defs.resolve_job_def("tideline_retrain").run_config == asked
