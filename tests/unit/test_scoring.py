"""Per-customer reasons and writing scores (with drift against the previous run)."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from models_ml.explain import top_reasons
from models_ml.registry import LoadedModel
from models_ml.scoring import SCORE_COLUMNS, record_model_run, write_scores


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
    rows = con.execute("select model, training_window_start, beats_baseline from ml.model_runs").fetchall()
    assert rows == [("churn", dt.date(2025, 8, 2), True)] * 2


@pytest.mark.parametrize("job, has_models", [("tideline_daily", False), ("tideline_retrain", True)])
def test_daily_job_rescores_and_weekly_job_retrains(tmp_path, job, has_models) -> None:
    from orchestration.definitions import build_definitions
    from orchestration.settings import Settings

    defs = build_definitions(Settings(tmp_path, tmp_path / "w.duckdb", tmp_path, "2026-01-01"))
    keys = {k.to_user_string() for k in defs.resolve_job_def(job).asset_layer.executable_asset_keys}
    assert ("ml/churn_model" in keys) is has_models
    assert {"ml/customer_scores", "marts/customer_tags"} <= keys
