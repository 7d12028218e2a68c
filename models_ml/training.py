"""Churn and purchase-propensity models: several past training cutoffs, one later held-out cutoff.

For a horizon of N days and a warehouse whose data ends on day E:

    evaluation cutoff  c_eval = E - N                 (its labels end on E)
    training cutoffs   c_k = c_eval - N - (k-1)*step  (their labels end before c_eval)

so no label window of the training data overlaps the evaluation window, and the
evaluation cutoff is later than any training data. The model is a histogram
gradient-boosting classifier with isotonic probability calibration; the baseline
is a logistic regression on recency alone. Both are scored on the held-out cutoff
with the same metrics (models_ml.evaluation). For scoring, the model is then
refitted on all cutoffs including the evaluation one (`refit_on_latest`), so it
has seen the most recent behaviour; the recorded metrics are the held-out ones.

Training time and memory stop growing with the customers: above `max_training_rows` (200,000)
the model is fitted on a sample stratified by cutoff and outcome, drawn with a fixed seed
(`sample_rows`), for the held-out fit and the refit alike; the evaluation and the scoring
(models_ml.scoring) still cover every customer.

Real data is awkward, and a model that cannot be trained must not stop the run:
features that are empty or constant in the training data are left out (and named,
`TrainedModel.dropped_features`); too few rows or only one outcome raise
`InsufficientData` with a reason in words; `not_trained_reason` turns any training
error into the "not trained: <reason>" the pipeline records and carries on with.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from models_ml.evaluation import Metrics, calibration_table, evaluate, lift_by_decile
from models_ml.features import (
    FEATURES,
    WAREHOUSE,
    FeatureSources,
    build_features,
    build_labels,
    data_end,
    is_active,
    usable_features,
)

log = logging.getLogger(__name__)


class InsufficientData(ValueError):
    """Not enough history or customers to train and check a model; the pipeline goes on without it.
    The message is the reason in words, without the model's name (callers add it)."""


def not_trained_reason(exc: BaseException) -> str:
    """The reason recorded as "not trained: <reason>": the words of InsufficientData, otherwise the
    error itself (an unexpected failure is still only this model's failure, never the run's)."""
    if isinstance(exc, InsufficientData):
        return str(exc)
    return f"training failed with {type(exc).__name__}: {exc}"


# A model needs this many labelled rows, and this many of each outcome, at the training cutoffs and
# at the evaluation cutoff (3-fold calibration and early stopping split the training rows further).
MIN_ROWS = 50
MIN_PER_OUTCOME = 10


@dataclass(frozen=True)
class TaskConfig:
    """What a model predicts.

    churn:      among buyers active in the last `active_window_days`, no purchase in the next `horizon_days`.
    propensity: among all known customers, at least one purchase in the next `horizon_days`.
    """

    name: str
    horizon_days: int
    population: str  # "active_buyers" | "all"
    positive: str  # "no_purchase" | "purchase"
    active_window_days: int = 365

    def describe_population(self) -> str:
        if self.population == "active_buyers":
            return f"buyers active in the {self.active_window_days} days before the cutoff"
        return "customers known at the cutoff"

    def describe_outcomes(self) -> tuple[str, str]:
        """(positive, negative) outcome in words, to follow a count of customers."""
        if self.positive == "no_purchase":
            return f"with no purchase in the next {self.horizon_days} days", "who bought again"
        return f"who bought in the next {self.horizon_days} days", "who did not"


CHURN = TaskConfig("churn", horizon_days=90, population="active_buyers", positive="no_purchase")
PROPENSITY = TaskConfig("propensity", horizon_days=30, population="all", positive="purchase")


@dataclass(frozen=True)
class TrainingConfig:
    training_cutoffs: int = 4
    cutoff_step_days: int = 30
    # rows a model is fitted on, at most: above it a sample stratified by cutoff and outcome, so that
    # training time and memory stop growing with the customers (every customer is still scored)
    max_training_rows: int = 200_000
    refit_on_latest: bool = True
    importance_rows: int = 20_000
    seed: int = 42


@dataclass
class TrainedModel:
    task: TaskConfig
    model: Any
    baseline: Any
    metrics: Metrics
    baseline_metrics: Metrics
    calibration: pd.DataFrame
    lift: pd.DataFrame
    importance: pd.DataFrame
    training_cutoffs: list[dt.date]
    evaluation_cutoff: dt.date
    end: dt.date
    training_rows: int
    evaluation_rows: int
    seconds: float
    available_rows: int = 0  # labelled rows at the training cutoffs before sampling
    features: tuple[str, ...] = FEATURES
    dropped_features: dict[str, str] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    @property
    def beats_baseline(self) -> bool:
        return self.metrics.roc_auc > self.baseline_metrics.roc_auc

    @property
    def status(self) -> str:
        """approved (used for scoring) or not_used (no better than the baseline)."""
        return "approved" if self.beats_baseline else "not_used"

    @property
    def reason(self) -> str | None:
        if self.beats_baseline:
            return None
        return (
            f"no better than its baseline on the held-out cutoff {self.evaluation_cutoff}: ROC AUC "
            f"{self.metrics.roc_auc:.3f} vs {self.baseline_metrics.roc_auc:.3f} for recency alone"
        )

    def metadata(self) -> dict:
        return {
            "task": self.task.name,
            "horizon_days": self.task.horizon_days,
            "population": self.task.population,
            "active_window_days": self.task.active_window_days,
            "training_window_end": str(self.end),
            "training_cutoffs": [str(c) for c in self.training_cutoffs],
            "evaluation_cutoff": str(self.evaluation_cutoff),
            "training_rows": self.training_rows,
            "training_rows_available": self.available_rows,
            "refit_rows": self.extra.get("refit_rows"),
            "evaluation_rows": self.evaluation_rows,
            "features": list(self.features),
            "dropped_features": dict(self.dropped_features),
            "metrics": self.metrics.as_dict(),
            "baseline_metrics": self.baseline_metrics.as_dict(),
            "beats_baseline": self.beats_baseline,
            "status": self.status,
            "reason": self.reason,
            "seconds": round(self.seconds, 1),
            # the evaluation tables, so that a reused model still shows them
            "calibration": _records(self.calibration),
            "lift_by_decile": _records(self.lift),
            "feature_importance": _records(self.importance.head(12)),
        }


def _records(table: pd.DataFrame) -> list[dict]:
    """A small table as JSON-ready rows (numpy numbers as Python floats and ints)."""
    return [
        {k: v.item() if hasattr(v, "item") else v for k, v in row.items()} for row in table.to_dict("records")
    ]


def plan_cutoffs(
    end: dt.date, horizon_days: int, n_training: int, step_days: int
) -> tuple[list[dt.date], dt.date]:
    """Training cutoffs (newest first) and the held-out evaluation cutoff for data ending on `end`."""
    if n_training < 1 or step_days < 1:
        raise ValueError("need at least one training cutoff and a positive step")
    evaluation = end - dt.timedelta(days=horizon_days)
    first = evaluation - dt.timedelta(days=horizon_days)
    training = [first - dt.timedelta(days=k * step_days) for k in range(n_training)]
    return training, evaluation


def labelled_snapshot(
    con: duckdb.DuckDBPyConnection,
    task: TaskConfig,
    cutoff: dt.date,
    sources: FeatureSources = WAREHOUSE,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Features at `cutoff` for the task's population, and the label from the window after it."""
    features = population(build_features(con, cutoff, sources), task)
    labels = build_labels(con, cutoff, task.horizon_days, sources)
    bought = features.index.isin(labels.index)
    y = (~bought if task.positive == "no_purchase" else bought).astype(int)
    return features, y


def population(features: pd.DataFrame, task: TaskConfig) -> pd.DataFrame:
    if task.population == "active_buyers":
        return features[is_active(features, task.active_window_days)]
    return features


def _stack(
    con: duckdb.DuckDBPyConnection, task: TaskConfig, cutoffs: list[dt.date], sources: FeatureSources
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    frames, ys, which = [], [], []
    for cutoff in cutoffs:
        x, y = labelled_snapshot(con, task, cutoff, sources)
        frames.append(x)
        ys.append(y)
        which.append(np.full(len(y), cutoff.toordinal()))
    return pd.concat(frames), np.concatenate(ys), np.concatenate(which)


def sample_rows(y: np.ndarray, groups: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """A boolean mask keeping at most `limit` rows, stratified by (group, label): every cutoff and
    both outcomes keep their share of the rows (largest remainders get the rounding), drawn with a
    fixed seed so that the same data gives the same sample. All rows when there are no more than
    `limit`."""
    if limit < 1:
        raise ValueError(f"max_training_rows must be at least 1, not {limit}")
    keep = np.zeros(len(y), dtype=bool)
    if len(y) <= limit:
        keep[:] = True
        return keep
    strata = [np.flatnonzero((groups == g) & (y == label)) for g in np.unique(groups) for label in (0, 1)]
    strata = [idx for idx in strata if len(idx)]
    exact = np.array([limit * len(idx) / len(y) for idx in strata])
    sizes = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - sizes), kind="stable")[: limit - int(sizes.sum())]:
        sizes[i] += 1
    rng = np.random.default_rng(seed)
    for idx, size in zip(strata, sizes, strict=True):
        keep[rng.choice(idx, size=size, replace=False)] = True
    return keep


def make_model(seed: int, n_rows: int) -> CalibratedClassifierCV:
    booster = HistGradientBoostingClassifier(
        max_iter=300,
        learning_rate=0.06,
        max_leaf_nodes=31,
        l2_regularization=1.0,
        early_stopping=True,
        validation_fraction=0.15,
        n_iter_no_change=20,
        random_state=seed,
    )
    method = "isotonic" if n_rows >= 5_000 else "sigmoid"
    return CalibratedClassifierCV(booster, method=method, cv=3)


def _recency_column(x: np.ndarray) -> np.ndarray:
    # recency-only baseline: never-bought or unknown recency counts as very long ago
    return np.log1p(np.nan_to_num(x, nan=3650.0))


def make_baseline() -> Any:
    return make_pipeline(
        FunctionTransformer(_recency_column), StandardScaler(), LogisticRegression(max_iter=1000)
    )


def train_task(
    con: duckdb.DuckDBPyConnection,
    task: TaskConfig,
    config: TrainingConfig | None = None,
    sources: FeatureSources = WAREHOUSE,
    end: dt.date | None = None,
) -> TrainedModel:
    """Train, evaluate on the held-out cutoff against the baseline, explain, and refit for scoring."""
    config = config or TrainingConfig()
    started = time.monotonic()
    end = end or data_end(con, sources)
    if end is None:
        raise InsufficientData("no purchases in the warehouse")
    training_cutoffs, evaluation_cutoff = plan_cutoffs(
        end, task.horizon_days, config.training_cutoffs, config.cutoff_step_days
    )
    x_labelled, y_labelled, groups = _stack(con, task, training_cutoffs, sources)
    keep = sample_rows(y_labelled, groups, config.max_training_rows, config.seed)
    x_train, y_train = x_labelled[keep], y_labelled[keep]
    x_eval, y_eval = labelled_snapshot(con, task, evaluation_cutoff, sources)
    _require_enough(task, y_train, f"the {len(training_cutoffs)} training cutoffs", training_cutoffs, end)
    _require_enough(task, y_eval, "the evaluation cutoff", [evaluation_cutoff], end)
    features, dropped = usable_features(x_train)
    if not features:
        raise InsufficientData("every feature is empty or constant at the training cutoffs")
    if dropped:
        log.warning("%s: features left out (empty or constant): %s", task.name, ", ".join(dropped))
    log.info(
        "%s: %s training rows over %s cutoffs, %s evaluation rows, %s features",
        task.name,
        len(y_train),
        len(training_cutoffs),
        len(y_eval),
        len(features),
    )

    model = make_model(config.seed, len(y_train)).fit(x_train[features].to_numpy(), y_train)
    baseline = make_baseline().fit(x_train[["days_since_last_purchase"]].to_numpy(), y_train)
    p_model = model.predict_proba(x_eval[features].to_numpy())[:, 1]
    p_base = baseline.predict_proba(x_eval[["days_since_last_purchase"]].to_numpy())[:, 1]
    importance = feature_importance(model, x_eval[features], y_eval, config)

    trained = TrainedModel(
        task=task,
        model=model,
        baseline=baseline,
        metrics=evaluate(y_eval, p_model),
        baseline_metrics=evaluate(y_eval, p_base),
        calibration=calibration_table(y_eval, p_model),
        lift=lift_by_decile(y_eval, p_model),
        importance=importance,
        training_cutoffs=training_cutoffs,
        evaluation_cutoff=evaluation_cutoff,
        end=end,
        training_rows=int(len(y_train)),
        evaluation_rows=int(len(y_eval)),
        seconds=0.0,
        available_rows=int(len(y_labelled)),
        features=tuple(features),
        dropped_features=dropped,
    )
    if config.refit_on_latest:  # on every cutoff, the evaluation one included, sampled the same way
        x_all = pd.concat([x_labelled, x_eval])[features]
        y_all = np.concatenate([y_labelled, y_eval])
        groups_all = np.concatenate([groups, np.full(len(y_eval), evaluation_cutoff.toordinal())])
        keep_all = sample_rows(y_all, groups_all, config.max_training_rows, config.seed)
        trained.model = make_model(config.seed, int(keep_all.sum())).fit(
            x_all[keep_all].to_numpy(), y_all[keep_all]
        )
        trained.extra["refit_rows"] = int(keep_all.sum())
    trained.seconds = time.monotonic() - started
    return trained


def _require_enough(
    task: TaskConfig, y: np.ndarray, where: str, cutoffs: list[dt.date], end: dt.date
) -> None:
    """InsufficientData, in words, unless `y` has MIN_ROWS rows and MIN_PER_OUTCOME of each outcome."""
    positive_words, negative_words = task.describe_outcomes()
    positives = int(np.sum(y))
    negatives = len(y) - positives
    if len(y) >= MIN_ROWS and min(positives, negatives) >= MIN_PER_OUTCOME:
        return
    dates = str(cutoffs[0]) if len(cutoffs) == 1 else f"{min(cutoffs)} to {max(cutoffs)}"
    raise InsufficientData(
        f"not enough data at {where} ({dates}): {len(y)} labelled rows ({task.describe_population()}), {positives} "
        f"{positive_words}, {negatives} {negative_words} (need at least {MIN_ROWS}, and "
        f"{MIN_PER_OUTCOME} of each); the orders end on {end}, so this needs a longer order history "
        f"before {min(cutoffs)} or more customers"
    )


def feature_importance(model: Any, x: pd.DataFrame, y: np.ndarray, config: TrainingConfig) -> pd.DataFrame:
    """Permutation importance (drop in ROC AUC when a feature is shuffled) on the held-out cutoff."""
    rng = np.random.default_rng(config.seed)
    idx = rng.choice(len(y), size=min(len(y), config.importance_rows), replace=False)
    result = permutation_importance(
        model, x.to_numpy()[idx], y[idx], scoring="roc_auc", n_repeats=3, random_state=config.seed, n_jobs=1
    )
    return (
        pd.DataFrame(
            {"feature": list(x.columns), "importance": result.importances_mean, "std": result.importances_std}
        )
        .sort_values("importance", ascending=False)
        .reset_index(drop=True)
    )
