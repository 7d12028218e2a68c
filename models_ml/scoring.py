"""Score every customer known on the as-of date and write the scores to the warehouse.

`ml.customer_scores` (one row per customer in marts.dim_customers known on the as-of date):
churn_probability (buyers active in the churn model's window, else null),
purchase_propensity (everyone), expected_purchases and p_alive (BG/NBD, buyers),
predicted_clv (BG/NBD × Gamma-Gamma over the CLV horizon, buyers), scored_at,
model_version and as_of_date. `ml.customer_score_reasons` holds the top reasons
for the customers on the at-risk list; `ml.model_runs` one row per training attempt
(a saved version, or "not trained" with the reason); `ml.score_models` which model
version filled which scores on each scoring run, or why a model was skipped.

Scoring degrades instead of failing: a model that is missing (not trained, not
better than its baseline, trained on other data) leaves its columns null, and the
other models still score. When no model can be used, `ml.customer_scores` is
written empty, so no score from an earlier run or other data survives.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from models_ml import clv
from models_ml.evaluation import population_stability_index
from models_ml.explain import top_reasons
from models_ml.features import FEATURES, WAREHOUSE, FeatureSources, build_features, is_active
from models_ml.lifetime_value import transactions
from models_ml.registry import LoadedModel, ModelNotFound, ModelRegistry

log = logging.getLogger(__name__)

SCHEMA = "ml"
MODELS = ("churn", "propensity", "clv")
# the score columns each model fills
MODEL_COLUMNS = {
    "churn": ("churn_probability",),
    "propensity": ("purchase_propensity",),
    "clv": ("expected_purchases", "p_alive", "predicted_clv"),
}
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
MODEL_RUN_COLUMNS = {
    "model": "varchar",
    "version": "varchar",
    "trained_at": "timestamp",
    "training_window_start": "date",
    "training_window_end": "date",
    "evaluation_cutoff": "date",
    "features": "varchar",
    "metrics": "varchar",
    "baseline_metrics": "varchar",
    "beats_baseline": "boolean",
    "status": "varchar",  # approved | not_used (no better than its baseline) | not_trained
    "reason": "varchar",  # why not used or not trained, in words; null when approved
    "dropped_features": "varchar",  # JSON {feature: why it was left out (empty or constant)}
    "trained_on": "varchar",  # JSON of the data it was trained on (models_ml.registry.data_identity)
}
SCORE_MODEL_COLUMNS = {
    "as_of_date": "date",
    "scored_at": "timestamp",
    "model": "varchar",
    "status": "varchar",  # scored | skipped
    "version": "varchar",  # the version that scored; null when skipped
    "customers": "integer",  # customers given a score by this model
    "reason": "varchar",  # why skipped, or a note on a scored model (e.g. its latest training failed)
}


def model_features(model: LoadedModel) -> list[str]:
    """The feature columns a classifier was trained on (all of FEATURES for models saved before
    empty and constant features were left out)."""
    return list(model.metadata.get("features") or FEATURES)


def score_customers(
    con: duckdb.DuckDBPyConnection,
    as_of: dt.date,
    churn: LoadedModel | None,
    propensity: LoadedModel | None,
    lifetime: LoadedModel | None,
    now: dt.datetime | None = None,
    sources: FeatureSources = WAREHOUSE,
    failures: dict[str, str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scores, features) for every customer known on the as-of date.

    A model given as None leaves its columns null. With `failures` given, a model that raises while
    scoring also leaves its columns null and its error goes into `failures[name]`; without it, the
    error is raised."""
    features = build_features(con, as_of, sources, include_undated=True)
    scores = pd.DataFrame(index=features.index)
    for column in SCORE_COLUMNS:
        if column not in ("customer_id", "scored_at", "model_version", "as_of_date"):
            scores[column] = np.nan
    apply: dict[str, Callable[[LoadedModel], None]] = {
        "churn": lambda m: _score_churn(scores, features, m),
        "propensity": lambda m: _score_propensity(scores, features, m),
        "clv": lambda m: _score_lifetime_value(scores, con, as_of, sources, m),
    }
    given = {"churn": churn, "propensity": propensity, "clv": lifetime}
    used = []
    for name in MODELS:
        model = given[name]
        if model is None:
            continue
        try:
            if not features.empty:
                apply[name](model)
            used.append(model)
        except Exception as exc:
            if failures is None:
                raise
            log.exception("%s: scoring failed; its scores are left empty", name)
            failures[name] = f"scoring failed with {type(exc).__name__}: {exc}"
            for column in MODEL_COLUMNS[name]:
                scores[column] = np.nan
    scores["scored_at"] = (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None)
    scores["model_version"] = ";".join(m.label for m in used)
    scores["as_of_date"] = as_of
    scores = scores.reset_index().rename(columns={"index": "customer_id"})
    return scores[list(SCORE_COLUMNS)], features


def _score_propensity(scores: pd.DataFrame, features: pd.DataFrame, model: LoadedModel) -> None:
    x = features[model_features(model)].to_numpy()
    scores["purchase_propensity"] = model.model.predict_proba(x)[:, 1]


def _score_churn(scores: pd.DataFrame, features: pd.DataFrame, model: LoadedModel) -> None:
    active = is_active(features, int(model.metadata.get("active_window_days", 365)))
    churn_p = np.full(len(features), np.nan)
    if active.any():
        x = features[model_features(model)].to_numpy()
        churn_p[active] = model.model.predict_proba(x[active])[:, 1]
    scores["churn_probability"] = churn_p


def _score_lifetime_value(
    scores: pd.DataFrame,
    con: duckdb.DuckDBPyConnection,
    as_of: dt.date,
    sources: FeatureSources,
    lifetime: LoadedModel,
) -> None:
    """BG/NBD and Gamma-Gamma for buyers with a positive amount (models_ml.lifetime_value's rule)."""
    params = lifetime.model
    summary = clv.rfm_summary(transactions(con, as_of, sources), as_of).reindex(scores.index)
    buyers = summary["frequency"].notna().to_numpy()
    if not buyers.any():
        return
    s = summary[buyers]
    horizon = float(params["horizon_days"])
    values = {
        "expected_purchases": clv.expected_purchases(
            params["bg"], horizon, s["frequency"], s["recency"], s["T"]
        ),
        "p_alive": clv.probability_alive(params["bg"], s["frequency"], s["recency"], s["T"]),
        "predicted_clv": clv.customer_lifetime_value(
            params["bg"],
            params["gg"],
            s["frequency"],
            s["recency"],
            s["T"],
            s["monetary_value"],
            horizon=horizon,
        ),
    }
    for column, value in values.items():  # all or nothing: compute first, then write
        scores.loc[buyers, column] = value


def at_risk_reasons(
    churn: LoadedModel | None,
    features: pd.DataFrame,
    scores: pd.DataFrame,
    threshold: float = 0.5,
    limit: int = 5_000,
) -> pd.DataFrame:
    """Top three reasons for the at-risk list: active buyers with churn_probability >= threshold, most
    valuable first (predicted CLV), at most `limit` customers. Empty without a churn model."""
    if churn is None:
        return pd.DataFrame(columns=list(REASON_COLUMNS))
    risky = scores[scores["churn_probability"] >= threshold].sort_values(
        ["predicted_clv", "churn_probability"], ascending=False
    )
    ids = risky["customer_id"].head(limit)
    columns = model_features(churn)
    active = features[is_active(features, int(churn.metadata.get("active_window_days", 365)))]
    return top_reasons(churn.model, features.loc[ids, columns], active[columns])


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


def _ensure_table(con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, str]) -> None:
    """Create ml.<table>, or add the columns an older version of it lacks (existing rows get nulls)."""
    con.execute(f"create schema if not exists {SCHEMA}")
    con.execute(
        f"create table if not exists {SCHEMA}.{table} ({', '.join(f'{c} {t}' for c, t in columns.items())})"
    )
    for column, kind in columns.items():
        con.execute(f"alter table {SCHEMA}.{table} add column if not exists {column} {kind}")


def _insert(con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, str], row: dict) -> None:
    names = list(columns)
    con.execute(
        f"insert into {SCHEMA}.{table} ({', '.join(names)}) values ({', '.join('?' for _ in names)})",
        [row.get(c) for c in names],
    )


def _model_runs(con: duckdb.DuckDBPyConnection) -> None:
    """ml.model_runs, migrated: rows written before status and reason existed get them from
    beats_baseline."""
    _ensure_table(con, "model_runs", MODEL_RUN_COLUMNS)
    con.execute(
        f"update {SCHEMA}.model_runs set status = case when beats_baseline then 'approved' else 'not_used' end, "
        "reason = case when beats_baseline then null else 'no better than its baseline' end "
        "where status is null"
    )


def _identity_key(trained_on: dict[str, str] | None) -> str | None:
    return json.dumps(trained_on, sort_keys=True) if trained_on is not None else None


def record_model_run(con: duckdb.DuckDBPyConnection, saved: LoadedModel) -> None:
    """Append one row to ml.model_runs for a saved model version (approved, or not_used when it did not
    beat its baseline)."""
    m = saved.metadata
    _model_runs(con)
    cutoffs = m.get("training_cutoffs") or [m.get("training_window_end")]
    beats = bool(m.get("beats_baseline", False))
    _insert(
        con,
        "model_runs",
        MODEL_RUN_COLUMNS,
        {
            "model": saved.name,
            "version": saved.version,
            "trained_at": dt.datetime.fromisoformat(m["trained_at"]).replace(tzinfo=None),
            "training_window_start": min(cutoffs),
            "training_window_end": m.get("training_window_end") or m.get("evaluation_cutoff"),
            "evaluation_cutoff": m.get("evaluation_cutoff"),
            "features": json.dumps(m.get("features", [])),
            "metrics": json.dumps(m.get("metrics", {})),
            "baseline_metrics": json.dumps(m.get("baseline_metrics", {})),
            "beats_baseline": beats,
            "status": m.get("status") or ("approved" if beats else "not_used"),
            "reason": m.get("reason") or (None if beats else "no better than its baseline"),
            "dropped_features": json.dumps(m.get("dropped_features", {})),
            "trained_on": _identity_key(m.get("trained_on")),
        },
    )


def record_not_trained(
    con: duckdb.DuckDBPyConnection,
    model: str,
    reason: str,
    trained_on: dict[str, str],
    now: dt.datetime | None = None,
) -> None:
    """Append a "not trained" row to ml.model_runs: no version, the reason in words."""
    _model_runs(con)
    _insert(
        con,
        "model_runs",
        MODEL_RUN_COLUMNS,
        {
            "model": model,
            "trained_at": (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None),
            "metrics": "{}",
            "baseline_metrics": "{}",
            "beats_baseline": False,
            "status": "not_trained",
            "reason": reason,
            "trained_on": _identity_key(trained_on),
        },
    )


def latest_training(
    con: duckdb.DuckDBPyConnection, model: str, trained_on: dict[str, str]
) -> tuple[str, str | None, str | None] | None:
    """(status, reason, version) of the latest training attempt of `model` on this data, if any."""
    exists = con.execute(
        "select count(*) from information_schema.columns where table_schema = ? and table_name = 'model_runs' "
        "and column_name = 'trained_on'",
        [SCHEMA],
    ).fetchone()[0]
    if not exists:
        return None
    row = con.execute(
        f"select status, reason, version from {SCHEMA}.model_runs where model = ? and trained_on = ? "
        "order by trained_at desc, version desc nulls first limit 1",
        [model, _identity_key(trained_on)],
    ).fetchone()
    return (row[0], row[1], row[2]) if row else None


@dataclass(frozen=True)
class ModelChoice:
    """The model that scores `name` on this run, or None; `note` says why none (or, for a model that
    scores, that its latest training failed and an earlier version of this data's model is used)."""

    name: str
    model: LoadedModel | None
    note: str | None = None


def choose_models(
    con: duckdb.DuckDBPyConnection, registry: ModelRegistry, trained_on: dict[str, str]
) -> dict[str, ModelChoice]:
    """Per model, the newest approved version trained on this data, else why there is none: the latest
    training on this data said "not trained: ..." or "not used: ...", or the registry had none for this
    data (never trained, or trained on other data)."""
    choices = {}
    for name in MODELS:
        latest = latest_training(con, name, trained_on)
        try:
            model = registry.load(name, trained_on=trained_on)
        except ModelNotFound as exc:
            choices[name] = ModelChoice(name, None, _why_none(latest, str(exc)))
            continue
        except Exception as exc:  # a corrupt or unreadable artefact is this model's problem only
            log.exception("%s: the model could not be loaded", name)
            choices[name] = ModelChoice(name, None, f"could not be loaded ({type(exc).__name__}: {exc})")
            continue
        note = None
        if latest is not None and latest[2] != model.version and latest[0] != "approved":
            note = f"latest training {_status_words(latest[0])}: {latest[1]}; scored with the earlier {model.version}"
        choices[name] = ModelChoice(name, model, note)
    return choices


def _status_words(status: str) -> str:
    return {"not_trained": "not trained", "not_used": "not used"}.get(status, status)


def _why_none(latest: tuple[str, str | None, str | None] | None, registry_reason: str) -> str:
    if latest is not None and latest[0] in ("not_trained", "not_used"):
        return f"{_status_words(latest[0])}: {latest[1]}"
    return registry_reason


def record_score_models(
    con: duckdb.DuckDBPyConnection,
    choices: dict[str, ModelChoice],
    scores: pd.DataFrame,
    as_of: dt.date,
    scored_at: dt.datetime,
) -> list[dict]:
    """Append to ml.score_models, per model, the version that scored and how many customers it scored,
    or why it was skipped; returns the rows."""
    _ensure_table(con, "score_models", SCORE_MODEL_COLUMNS)
    rows = []
    for name in MODELS:
        choice = choices[name]
        column = MODEL_COLUMNS[name][0]
        customers = int(scores[column].notna().sum()) if column in scores else 0
        row = {
            "as_of_date": as_of,
            "scored_at": scored_at.replace(tzinfo=None),
            "model": name,
            "status": "scored" if choice.model is not None else "skipped",
            "version": choice.model.version if choice.model is not None else None,
            "customers": customers if choice.model is not None else 0,
            "reason": choice.note,
        }
        _insert(con, "score_models", SCORE_MODEL_COLUMNS, row)
        rows.append(row)
    return rows
