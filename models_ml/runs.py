"""Training and scoring as the pipeline runs them: every outcome recorded, no failure escapes.

The Dagster assets (orchestration/ml.py) are thin wrappers around these two functions, and
the tests call them directly on real warehouses:

- `train_and_record` trains one model, saves the artefact with the data it was trained on
  and appends the outcome to ml.model_runs: approved (used for scoring), not_used (no better
  than its baseline) or not_trained with the reason. A model that cannot be trained is that
  model's problem, never the run's: any error becomes "not trained: <reason>".
- `train_on_schedule` does that only when the model is due (models_ml.schedule: asked for, none
  yet, settings changed, too old, data moved); otherwise it reuses the newest version of this data
  and its stored evaluation, and ml.model_runs gets no row (it lists training attempts).
- `score_and_record` scores every customer with the models it may use (approved, trained on
  this data), leaves the columns of the others null, writes ml.customer_scores (empty when no
  model can be used, so no earlier or foreign score survives), the at-risk reasons, and
  ml.score_models: which version scored, or why a model was skipped.
- `score_unless_unchanged` does that only when something it reads changed since the last scoring
  (models_ml.score_inputs); otherwise the tables stay as they are, byte for byte.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import duckdb
import pandas as pd

from models_ml.features import WAREHOUSE, FeatureSources, data_end
from models_ml.registry import LoadedModel, ModelRegistry
from models_ml.schedule import Decision, Schedule, decide, settings_hash
from models_ml.score_inputs import Fingerprints, LastScoring, input_digest, remember_scoring, unchanged_since
from models_ml.scoring import (
    MODELS,
    ModelChoice,
    at_risk_reasons,
    choose_models,
    record_model_run,
    record_not_trained,
    record_score_models,
    score_customers,
    write_scores,
)
from models_ml.training import InsufficientData, not_trained_reason


class Trained(Protocol):
    """What models_ml.training.TrainedModel and models_ml.lifetime_value.TrainedCLV share."""

    @property
    def beats_baseline(self) -> bool: ...

    @property
    def status(self) -> str: ...

    @property
    def reason(self) -> str | None: ...

    def metadata(self) -> dict: ...


T = TypeVar("T", bound=Trained)


@dataclass(frozen=True)
class TrainingOutcome(Generic[T]):
    """approved / not_used with the saved version and the trained model, or not_trained with the reason
    (and the error, so the caller can log its traceback when it was not just too little data).
    `reused`: no training this run, `saved` is the earlier version still fresh (`trained` is None);
    `why`: why it was trained, or why it was reused (models_ml.schedule)."""

    name: str
    status: str
    reason: str | None
    saved: LoadedModel | None = None
    trained: T | None = None
    error: Exception | None = None
    reused: bool = False
    why: str = ""

    @property
    def unexpected(self) -> bool:
        """A failure other than too little data (worth a traceback in the log)."""
        return self.error is not None and not isinstance(self.error, InsufficientData)


def train_and_record(
    con: duckdb.DuckDBPyConnection,
    name: str,
    train: Callable[[], T],
    artefact: Callable[[T], Any],
    registry: ModelRegistry,
    trained_on: dict[str, str],
    extra_metadata: Mapping[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> TrainingOutcome[T]:
    """Train with `train()`, save `artefact(trained)` as a new version of `name` trained on `trained_on`
    (its metadata plus `extra_metadata`), and record the outcome in ml.model_runs. Never raises for a
    training failure: it is recorded as not_trained with the reason."""
    try:
        trained = train()
        metadata = {**trained.metadata(), **(extra_metadata or {})}
        saved = registry.save(name, artefact(trained), metadata, trained_on=trained_on, now=now)
    except Exception as exc:  # every training failure is this model's, never the run's
        reason = not_trained_reason(exc)
        record_not_trained(con, name, reason, trained_on)
        return TrainingOutcome(name, "not_trained", reason, error=exc)
    record_model_run(con, saved)
    return TrainingOutcome(name, trained.status, trained.reason, saved, trained)


def train_on_schedule(
    con: duckdb.DuckDBPyConnection,
    name: str,
    train: Callable[[], T],
    artefact: Callable[[T], Any],
    registry: ModelRegistry,
    trained_on: dict[str, str],
    settings: Mapping[str, Any],
    schedule: Schedule,
    now: dt.datetime | None = None,
    sources: FeatureSources = WAREHOUSE,
) -> TrainingOutcome[T]:
    """`train_and_record` when the model is due (models_ml.schedule.decide), else the newest version of
    this data, reused with its stored evaluation. `settings`: what the model is trained with (task,
    training settings, features), hashed and stored with the model to notice a change."""
    wanted = settings_hash(settings)
    now = now or dt.datetime.now(dt.UTC)
    try:
        decision = decide(registry, name, trained_on, wanted, _data_end(con, sources), schedule, now)
    except Exception as exc:  # an unreadable artefact is retrained, never the run's failure
        decision = Decision(True, f"the saved model could not be read ({type(exc).__name__}: {exc})")
    if decision.model is not None:
        meta = decision.model.metadata
        status = meta.get("status") or ("approved" if meta.get("beats_baseline") else "not_used")
        return TrainingOutcome(
            name, status, meta.get("reason"), saved=decision.model, reused=True, why=decision.reason
        )
    outcome = train_and_record(
        con,
        name,
        train,
        artefact,
        registry,
        trained_on,
        {"settings_hash": wanted, "settings": dict(settings)},
        now,
    )
    return dataclasses.replace(outcome, why=decision.reason)


def _data_end(con: duckdb.DuckDBPyConnection, sources: FeatureSources) -> dt.date | None:
    """The last purchase day, or None when the orders cannot be read (training then says why)."""
    try:
        return data_end(con, sources)
    except duckdb.Error:
        return None


@dataclass(frozen=True)
class ScoringOutcome:
    scores: pd.DataFrame
    reasons: pd.DataFrame
    models: list[dict]  # the ml.score_models rows of this run
    psi: float | None  # churn-score drift against the scores replaced (None without two churn scorings)
    # not scored: the inputs are those of this earlier scoring, whose tables are left as they were
    reused: LastScoring | None = None


def score_and_record(
    con: duckdb.DuckDBPyConnection,
    registry: ModelRegistry,
    trained_on: dict[str, str],
    as_of: dt.date,
    at_risk_threshold: float = 0.5,
    now: dt.datetime | None = None,
    sources: FeatureSources = WAREHOUSE,
    choices: Mapping[str, ModelChoice] | None = None,
) -> ScoringOutcome:
    """Score every customer known on the as-of date with the usable models (`choices`, else
    choose_models') and write the results."""
    now = now or dt.datetime.now(dt.UTC)
    choices = dict(choices) if choices is not None else choose_models(con, registry, trained_on)
    failures: dict[str, str] = {}
    scores, features = score_customers(
        con, as_of, *(choices[n].model for n in MODELS), now=now, sources=sources, failures=failures
    )
    for name, reason in failures.items():
        choices[name] = ModelChoice(name, None, reason)
    if all(c.model is None for c in choices.values()):
        scores = scores.iloc[0:0]  # no usable model: no scores, and none from an earlier run survive
    reasons = at_risk_reasons(choices["churn"].model, features, scores, threshold=at_risk_threshold)
    psi = write_scores(con, scores, reasons)
    rows = record_score_models(con, choices, scores, as_of, now)
    return ScoringOutcome(scores, reasons, rows, psi)


def score_unless_unchanged(
    con: duckdb.DuckDBPyConnection,
    registry: ModelRegistry,
    trained_on: dict[str, str],
    as_of: dt.date,
    at_risk_threshold: float = 0.5,
    run_id: str = "",
    now: dt.datetime | None = None,
    sources: FeatureSources = WAREHOUSE,
    *,
    fingerprints: Fingerprints,
) -> ScoringOutcome:
    """`score_and_record`, unless its inputs (models_ml.score_inputs: model versions, as-of date,
    settings, feature tables) are those of the last scoring and its tables are still in place: then
    nothing is written and the outcome says since which run (`reused`). `run_id` names this run in
    ml.score_inputs when it scores; `fingerprints` fingerprints tables (the pipeline passes
    tideline.fingerprint.table_fingerprints)."""
    now = now or dt.datetime.now(dt.UTC)
    choices = choose_models(con, registry, trained_on)
    models = {
        n: {"version": c.model.version if c.model else None, "note": c.note} for n, c in choices.items()
    }
    wanted = input_digest(con, models, as_of, {"at_risk_threshold": at_risk_threshold}, sources, fingerprints)
    last = unchanged_since(con, wanted, fingerprints)
    if last is not None:
        nothing = pd.DataFrame()
        return ScoringOutcome(nothing, nothing, [], None, reused=last)
    outcome = score_and_record(con, registry, trained_on, as_of, at_risk_threshold, now, sources, choices)
    remember_scoring(con, wanted, run_id, now, fingerprints)
    return outcome
