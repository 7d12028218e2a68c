"""Per-customer reasons, writing scores (with drift against the previous run), recording every
training outcome, choosing only usable models trained on this data, and the summary's scores section."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from models_ml.explain import top_reasons
from models_ml.features import FeatureSources
from models_ml.registry import LoadedModel, ModelRegistry, data_identity
from models_ml.runs import score_and_record, train_and_record
from models_ml.scoring import (
    SCORE_COLUMNS,
    choose_models,
    record_model_run,
    record_not_trained,
    score_customers,
    write_scores,
)
from models_ml.training import InsufficientData
from tideline.reporting.summary import _score_lines


def test_top_reasons_name_the_features_that_push_the_score_up() -> None:
    rng = np.random.default_rng(0)
    x = pd.DataFrame(
        {"days_since_last_purchase": rng.uniform(0, 365, 2000), "orders_90d": rng.poisson(1, 2000)}
    )
    # risk rises with recency only; orders_90d is noise
    y = (x["days_since_last_purchase"] + rng.normal(0, 30, 2000) > 180).astype(int)
    model = LogisticRegression(max_iter=1000).fit(x.to_numpy(), y)
    customers = pd.DataFrame(
        {"days_since_last_purchase": [350.0, 10.0], "orders_90d": [1.0, 1.0]}, index=["stale", "fresh"]
    )
    reasons = top_reasons(model, customers, x)
    stale = reasons[reasons["customer_id"] == "stale"].iloc[0]
    assert stale["feature"] == "days_since_last_purchase" and stale["reason_rank"] == 1
    assert (
        stale["reason"]
        == f"days since last purchase: 350 (typical {x['days_since_last_purchase'].median():,.0f})"
    )
    assert stale["effect"] > 0.3
    # the fresh customer's recency lowers the risk, so it is not a reason
    assert "days_since_last_purchase" not in set(reasons.loc[reasons["customer_id"] == "fresh", "feature"])


def _scores(churn: np.ndarray) -> pd.DataFrame:
    n = len(churn)
    return pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "churn_probability": churn,
            "purchase_propensity": np.full(n, 0.1),
            "expected_purchases": np.ones(n),
            "p_alive": np.full(n, 0.5),
            "predicted_clv": np.full(n, 100.0),
            "scored_at": dt.datetime(2026, 1, 1),
            "model_version": "churn:v1",
            "as_of_date": dt.date(2026, 1, 1),
        }
    )


def test_write_scores_replaces_the_table_and_reports_drift() -> None:
    con = duckdb.connect()
    rng = np.random.default_rng(1)
    no_reasons = pd.DataFrame(columns=["customer_id"])
    assert write_scores(con, _scores(rng.uniform(size=5000)), no_reasons) is None  # first run
    columns = [d[0] for d in con.execute("select * from ml.customer_scores limit 0").description]
    assert columns == list(SCORE_COLUMNS)
    assert write_scores(con, _scores(rng.uniform(size=5000)), no_reasons) < 0.02  # same distribution
    drift = write_scores(con, _scores(rng.uniform(0.7, 1.0, size=5000)), no_reasons)
    assert drift > 1.0
    assert con.execute("select count(*) from ml.customer_scores").fetchone()[0] == 5000


def test_record_model_run_appends(tmp_path) -> None:
    con = duckdb.connect()
    saved = LoadedModel(
        "churn",
        "v1",
        None,
        {
            "trained_at": "2026-01-05T10:00:00+00:00",
            "training_cutoffs": ["2025-09-01", "2025-08-02"],
            "training_window_end": "2025-12-31",
            "evaluation_cutoff": "2025-10-02",
            "features": ["a"],
            "metrics": {"roc_auc": 0.8},
            "baseline_metrics": {"roc_auc": 0.7},
            "beats_baseline": True,
        },
    )
    record_model_run(con, saved)
    record_model_run(con, saved)
    rows = con.execute(
        "select model, training_window_start, beats_baseline, status, reason from ml.model_runs"
    ).fetchall()
    assert rows == [("churn", dt.date(2025, 8, 2), True, "approved", None)] * 2


def test_model_runs_of_an_older_layout_are_migrated_in_place() -> None:
    """A warehouse scored before status and reason existed keeps its rows; they get them from
    beats_baseline, and a not-trained outcome can be appended."""
    con = duckdb.connect()
    con.execute("create schema ml")
    con.execute(
        """create table ml.model_runs (
            model varchar, version varchar, trained_at timestamp, training_window_start date,
            training_window_end date, evaluation_cutoff date, features varchar, metrics varchar,
            baseline_metrics varchar, beats_baseline boolean)"""
    )
    con.execute(
        "insert into ml.model_runs values ('churn', 'v0', '2025-01-01', null, null, null, '[]', '{}', '{}', false),"
        " ('clv', 'v1', '2025-01-01', null, null, null, '[]', '{}', '{}', true)"
    )
    record_not_trained(con, "churn", "only 12 rows", {"warehouse": "w"}, now=dt.datetime(2026, 1, 1))
    rows = con.execute(
        "select model, version, status, reason, trained_on from ml.model_runs order by 2"
    ).fetchall()
    assert rows == [
        ("churn", "v0", "not_used", "no better than its baseline", None),
        ("clv", "v1", "approved", None, None),
        ("churn", None, "not_trained", "only 12 rows", '{"warehouse": "w"}'),
    ]


class _Fixed:
    """A classifier that predicts a constant probability, or raises when asked to."""

    def __init__(self, p: float | None) -> None:
        self.p = p

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        if self.p is None:
            raise RuntimeError("model file is corrupt")
        return np.column_stack([np.full(len(x), 1 - self.p), np.full(len(x), self.p)])


SOURCES = FeatureSources(orders="orders", items="items", events="events", customers="customers")
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


def _model(name: str, p: float | None, **metadata) -> LoadedModel:
    return LoadedModel(name, "v1", _Fixed(p), {"features": ["days_since_last_purchase"], **metadata})


def test_a_missing_model_leaves_only_its_columns_empty(shop) -> None:
    scores, _ = score_customers(shop, AS_OF, _model("churn", 0.7), None, None, sources=SOURCES)
    scores = scores.set_index("customer_id")
    assert scores.loc["a", "churn_probability"] == pytest.approx(0.7)
    assert np.isnan(scores.loc["b", "churn_probability"])  # not active in the last 365 days
    assert (
        scores[["purchase_propensity", "expected_purchases", "p_alive", "predicted_clv"]].isna().all().all()
    )
    assert set(scores["model_version"]) == {"churn:v1"}


def test_a_model_that_fails_while_scoring_is_left_out_and_named(shop) -> None:
    failures: dict[str, str] = {}
    scores, _ = score_customers(
        shop,
        AS_OF,
        _model("churn", 0.7),
        _model("propensity", None),
        None,
        sources=SOURCES,
        failures=failures,
    )
    assert failures == {"propensity": "scoring failed with RuntimeError: model file is corrupt"}
    assert scores["purchase_propensity"].isna().all() and scores["churn_probability"].notna().any()
    assert set(scores["model_version"]) == {"churn:v1"}
    with pytest.raises(RuntimeError, match="corrupt"):  # without a failures dict the error is raised
        score_customers(shop, AS_OF, None, _model("propensity", None), None, sources=SOURCES)


def test_choose_models_uses_only_approved_models_of_this_data_and_says_why_not(tmp_path, shop) -> None:
    registry = ModelRegistry(tmp_path / "models")
    mine = data_identity(tmp_path / "w.duckdb", tmp_path / "raw")
    demo = data_identity(tmp_path / "demo.duckdb", tmp_path / "demo-raw")
    churn = registry.save("churn", _Fixed(0.7), {"beats_baseline": True, "features": []}, trained_on=mine)
    registry.save("propensity", _Fixed(0.2), {"beats_baseline": True}, trained_on=demo)
    record_not_trained(shop, "churn", "only 12 rows at the evaluation cutoff", mine)  # the latest attempt
    record_not_trained(shop, "clv", "0 repeat buyers", mine)
    record_not_trained(shop, "propensity", "only 3 rows", demo)  # another dataset's attempt: not ours

    choices = choose_models(shop, registry, mine)
    assert choices["churn"].model is not None and choices["churn"].model.version == churn.version
    assert choices["churn"].note == (
        f"latest training not trained: only 12 rows at the evaluation cutoff; scored with the earlier {churn.version}"
    )
    assert choices["propensity"].model is None
    assert "was trained on other data" in choices["propensity"].note
    assert choices["clv"].model is None and choices["clv"].note == "not trained: 0 repeat buyers"


def _fails(exc: Exception):
    def train():
        raise exc

    return train


def test_scoring_with_no_usable_model_writes_no_scores(tmp_path, shop) -> None:
    """Earlier scores (here from another dataset's models) never survive a run that cannot score."""
    write_scores(shop, _scores(np.array([0.9, 0.8])), pd.DataFrame(columns=["customer_id"]))
    registry = ModelRegistry(tmp_path / "models")
    mine = data_identity(tmp_path / "w.duckdb", tmp_path / "raw")
    outcome = train_and_record(
        shop, "churn", _fails(InsufficientData("only 3 rows")), lambda t: t, registry, mine
    )
    assert (outcome.status, outcome.reason, outcome.saved, outcome.unexpected) == (
        "not_trained",
        "only 3 rows",
        None,
        False,
    )
    failed = train_and_record(
        shop, "clv", _fails(ZeroDivisionError("division by zero")), lambda t: t, registry, mine
    )
    assert failed.status == "not_trained" and failed.unexpected
    assert failed.reason == "training failed with ZeroDivisionError: division by zero"

    result = score_and_record(shop, registry, mine, AS_OF, sources=SOURCES, now=dt.datetime(2025, 7, 1))
    assert len(result.scores) == 0 and result.psi is None
    assert shop.execute("select count(*) from ml.customer_scores").fetchone()[0] == 0
    rows = shop.execute(
        "select model, status, version, customers, reason from ml.score_models order by 1"
    ).fetchall()
    assert rows[0] == ("churn", "skipped", None, 0, "not trained: only 3 rows")
    assert rows[1] == (
        "clv",
        "skipped",
        None,
        0,
        "not trained: training failed with ZeroDivisionError: division by zero",
    )
    assert rows[2][:4] == ("propensity", "skipped", None, 0) and "no trained 'propensity' model" in rows[2][4]


def _with_tags(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    con.execute("create schema marts")
    con.execute("create table marts.customer_tags (customer_id varchar, tag varchar)")
    return con


def test_summary_says_which_scores_exist_and_why_the_others_are_skipped(tmp_path, shop) -> None:
    con, registry = _with_tags(shop), ModelRegistry(tmp_path / "models")
    mine = data_identity(tmp_path / "w.duckdb", tmp_path / "raw")
    metadata = {
        "beats_baseline": True,
        "task": "propensity",
        "features": ["days_since_last_purchase"],
        "dropped_features": {
            "days_since_last_event": "empty for every customer",
            "visits_30d": "0 for every customer",
        },
        "metrics": {"roc_auc": 0.81, "lift_top_decile": 2.5},
        "baseline_metrics": {"roc_auc": 0.74},
    }
    saved = registry.save("propensity", _Fixed(0.3), metadata, trained_on=mine)
    record_model_run(con, saved)
    record_not_trained(
        con, "churn", "not enough data at the evaluation cutoff (2025-04-01): 12 labelled rows", mine
    )
    record_not_trained(con, "clv", "not enough data before the held-out 90 days: 3 buyers", mine)
    score_and_record(con, registry, mine, AS_OF, sources=SOURCES)

    assert _score_lines(con, str(AS_OF)) == [
        "",
        "Predictive scores: 3 customers scored",
        "  churn       not trained: not enough data at the evaluation cutoff (2025-04-01): 12 labelled rows",
        "  clv         not trained: not enough data before the held-out 90 days: 3 buyers",
        "  propensity  ROC AUC 0.810 (baseline 0.740), lift in top decile 2.50",
        "              left out (empty or constant for everyone): days_since_last_event, visits_30d",
    ]


def test_summary_says_none_were_scored_with_each_reason(tmp_path, shop) -> None:
    con, registry = _with_tags(shop), ModelRegistry(tmp_path / "models")
    mine = data_identity(tmp_path / "w.duckdb", tmp_path / "raw")
    demo = data_identity(tmp_path / "demo.duckdb", tmp_path / "demo-raw")
    registry.save("churn", _Fixed(0.5), {"beats_baseline": True}, trained_on=demo)  # the demo's model
    for name in ("churn", "clv", "propensity"):
        record_not_trained(con, name, "only 12 customers", mine)
    score_and_record(con, registry, mine, AS_OF, sources=SOURCES)
    lines = _score_lines(con, str(AS_OF))
    assert lines[1].startswith("Predictive scores: none")
    assert lines[2:] == [
        f"  {name:<11} not trained: only 12 customers" for name in ("churn", "clv", "propensity")
    ]
    assert not any("customers scored" in line for line in lines)


@pytest.mark.parametrize("job, has_models", [("tideline_daily", False), ("tideline_retrain", True)])
def test_daily_job_rescores_and_weekly_job_retrains(tmp_path, job, has_models) -> None:
    from orchestration.definitions import build_definitions
    from tideline.settings import Settings

    defs = build_definitions(Settings(tmp_path, tmp_path / "w.duckdb", tmp_path, "2026-01-01"))
    keys = {k.to_user_string() for k in defs.resolve_job_def(job).asset_layer.executable_asset_keys}
    assert ("ml/churn_model" in keys) is has_models
    assert {"ml/customer_scores", "marts/customer_tags"} <= keys
