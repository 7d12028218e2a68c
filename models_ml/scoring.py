"""Score every customer known on the as-of date and write the scores to the warehouse.

`ml.customer_scores` (one row per customer in marts.dim_customers known on the as-of date):
churn_probability (buyers active in the churn model's window, else null),
purchase_propensity (everyone), expected_purchases and p_alive (BG/NBD, buyers),
predicted_clv (BG/NBD × Gamma-Gamma over the CLV horizon, buyers), scored_at,
model_version and as_of_date. `ml.customer_score_reasons` holds the top reasons
for the customers on the at-risk list; `ml.model_runs` one row per trained model.
"""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import numpy as np
import pandas as pd

from models_ml import clv
from models_ml.evaluation import population_stability_index
from models_ml.explain import top_reasons
from models_ml.features import WAREHOUSE, FeatureSources, build_features, is_active
from models_ml.lifetime_value import transactions
from models_ml.registry import LoadedModel

SCHEMA = "ml"
# Keep in step with dbt_project/macros/ml_tables.sql (a test checks they agree).
SCORE_COLUMNS = {
    "customer_id": "varchar",
    "churn_probability": "double",
    "purchase_propensity": "double",
    "expected_purchases": "double",
    "p_alive": "double",
    "predicted_clv": "double",
    "scored_at": "timestamp",
    "model_version": "varchar",
    "as_of_date": "date",
}
REASON_COLUMNS = {
    "customer_id": "varchar",
    "reason_rank": "integer",
    "feature": "varchar",
    "value": "double",
    "typical_value": "double",
    "effect": "double",
    "reason": "varchar",
}


def score_customers(
    con: duckdb.DuckDBPyConnection,
    as_of: dt.date,
    churn: LoadedModel,
    propensity: LoadedModel,
    lifetime: LoadedModel,
    now: dt.datetime | None = None,
    sources: FeatureSources = WAREHOUSE,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scores, features) for every customer known on the as-of date."""
    features = build_features(con, as_of, sources, include_undated=True)
    x = features.to_numpy()
    scores = pd.DataFrame(index=features.index)
    scores["purchase_propensity"] = propensity.model.predict_proba(x)[:, 1]
    active = is_active(features, int(churn.metadata.get("active_window_days", 365)))
    churn_p = np.full(len(features), np.nan)
    if active.any():
        churn_p[active] = churn.model.predict_proba(x[active])[:, 1]
    scores["churn_probability"] = churn_p

    params = lifetime.model
    summary = clv.rfm_summary(transactions(con, as_of, sources), as_of).reindex(features.index)
    buyers = summary["frequency"].notna().to_numpy()
    for column in ("expected_purchases", "p_alive", "predicted_clv"):
        scores[column] = np.nan
    if buyers.any():
        s = summary[buyers]
        horizon = float(params["horizon_days"])
        scores.loc[buyers, "expected_purchases"] = clv.expected_purchases(
            params["bg"], horizon, s["frequency"], s["recency"], s["T"]
        )
        scores.loc[buyers, "p_alive"] = clv.probability_alive(
            params["bg"], s["frequency"], s["recency"], s["T"]
        )
        scores.loc[buyers, "predicted_clv"] = clv.customer_lifetime_value(
            params["bg"],
            params["gg"],
            s["frequency"],
            s["recency"],
            s["T"],
            s["monetary_value"],
            horizon=horizon,
        )
    scores["scored_at"] = (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None)
    scores["model_version"] = ";".join(m.label for m in (churn, propensity, lifetime))
    scores["as_of_date"] = as_of
    scores = scores.reset_index().rename(columns={"index": "customer_id"})
    return scores[list(SCORE_COLUMNS)], features


def at_risk_reasons(
    churn: LoadedModel,
    features: pd.DataFrame,
    scores: pd.DataFrame,
    threshold: float = 0.5,
    limit: int = 5_000,
) -> pd.DataFrame:
    """Top three reasons for the at-risk list: active buyers with churn_probability >= threshold, most
    valuable first (predicted CLV), at most `limit` customers."""
    risky = scores[scores["churn_probability"] >= threshold].sort_values(
        ["predicted_clv", "churn_probability"], ascending=False
    )
    ids = risky["customer_id"].head(limit)
    active = features[is_active(features, int(churn.metadata.get("active_window_days", 365)))]
    return top_reasons(churn.model, features.loc[ids], active)


def _replace(con: duckdb.DuckDBPyConnection, table: str, df: pd.DataFrame, columns: dict[str, str]) -> None:
    con.execute(f"create schema if not exists {SCHEMA}")
    con.register("_frame", df)
    select = ", ".join(f"cast({c} as {t}) as {c}" for c, t in columns.items())
    con.execute(f"create or replace table {SCHEMA}.{table} as select {select} from _frame")
    con.unregister("_frame")


def previous_scores(con: duckdb.DuckDBPyConnection, column: str = "churn_probability") -> np.ndarray | None:
    exists = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = 'customer_scores'",
        [SCHEMA],
    ).fetchone()[0]
    if not exists:
        return None
    values = con.execute(
        f"select {column} from {SCHEMA}.customer_scores where {column} is not null"
    ).fetchnumpy()
    return values[column] if len(values[column]) else None


def write_scores(con: duckdb.DuckDBPyConnection, scores: pd.DataFrame, reasons: pd.DataFrame) -> float | None:
    """Replace ml.customer_scores and ml.customer_score_reasons; returns the churn-score PSI against the
    scores it replaced (None on the first run)."""
    before = previous_scores(con)
    _replace(con, "customer_scores", scores, SCORE_COLUMNS)
    _replace(con, "customer_score_reasons", reasons.reindex(columns=list(REASON_COLUMNS)), REASON_COLUMNS)
    after = scores["churn_probability"].dropna().to_numpy()
    if before is None or len(after) == 0:
        return None
    return population_stability_index(before, after)


def record_model_run(con: duckdb.DuckDBPyConnection, saved: LoadedModel) -> None:
    """Append one row to ml.model_runs for a saved model version."""
    m = saved.metadata
    con.execute(f"create schema if not exists {SCHEMA}")
    con.execute(
        f"""create table if not exists {SCHEMA}.model_runs (
            model varchar, version varchar, trained_at timestamp, training_window_start date,
            training_window_end date, evaluation_cutoff date, features varchar, metrics varchar,
            baseline_metrics varchar, beats_baseline boolean)"""
    )
    cutoffs = m.get("training_cutoffs") or [m.get("training_window_end")]
    con.execute(
        f"insert into {SCHEMA}.model_runs values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            saved.name,
            saved.version,
            dt.datetime.fromisoformat(m["trained_at"]).replace(tzinfo=None),
            min(cutoffs),
            m.get("training_window_end") or m.get("evaluation_cutoff"),
            m.get("evaluation_cutoff"),
            json.dumps(m.get("features", [])),
            json.dumps(m.get("metrics", {})),
            json.dumps(m.get("baseline_metrics", {})),
            bool(m.get("beats_baseline", False)),
        ],
    )
