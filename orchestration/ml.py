"""Predictive-score assets: thin wrappers around models_ml (plain, tested Python).

They degrade instead of failing, so a model that cannot be trained never costs the run its
rule tags, segments, syncs, report or summary: a model asset that cannot train says
"not trained: <reason>" (recorded in ml.model_runs, a WARN check), one that does not beat
its baseline is saved but not used (a WARN check), and `customer_scores` always writes
ml.customer_scores with the scores the usable models give (columns of a missing model are
null; no usable model leaves it empty) and records in ml.score_models which model scored
and why any was skipped. Models are trained on, and only score, the data they were
trained on (models_ml.registry.data_identity of the warehouse and raw dir).

A model is trained only when due (models_ml.schedule; the `retrain` config forces it), else reused
with its stored evaluation; `customer_scores` rescores only when what it reads changed
(models_ml.score_inputs), else materialises as `reused` with its tables untouched.
"""

import dataclasses
import datetime as dt
from collections.abc import Iterator

import dagster as dg
import pandas as pd

from models_ml.features import FEATURES
from models_ml.lifetime_value import TrainedCLV, train_clv
from models_ml.registry import LoadedModel, ModelRegistry, data_identity
from models_ml.runs import TrainingOutcome, score_unless_unchanged, train_on_schedule
from models_ml.schedule import Schedule
from models_ml.score_inputs import LastScoring
from models_ml.training import CHURN, PROPENSITY, TaskConfig, TrainedModel, TrainingConfig, train_task
from orchestration.dbt import model_key
from orchestration.metadata import shown_columns
from orchestration.resources import MLSettings, PipelineSettings, WarehouseResource
from tideline.fingerprint import table_fingerprints

FEATURE_MODELS = ["int_orders_resolved", "int_order_items_joined", "int_events_stitched", "dim_customers"]
FEATURE_DEPS = [model_key(model) for model in FEATURE_MODELS]
CHURN_KEY = dg.AssetKey(["ml", "churn_model"])
PROPENSITY_KEY = dg.AssetKey(["ml", "propensity_model"])
CLV_KEY = dg.AssetKey(["ml", "clv_model"])
SCORES_KEY = dg.AssetKey(["ml", "customer_scores"])


def _rounded(meta: dict, key: str) -> dict:
    return {k: round(v, 5) if isinstance(v, float) else v for k, v in meta.get(key, {}).items()}


def _md(df: pd.DataFrame, digits: int = 3) -> dg.MetadataValue:
    return dg.MetadataValue.md(df.round(digits).to_markdown(index=False))


def _identity(warehouse: WarehouseResource, pipeline: PipelineSettings) -> dict[str, str]:
    return data_identity(warehouse.path, pipeline.raw_dir)


def _beats_baseline_spec(key: dg.AssetKey, description: str) -> dg.AssetCheckSpec:
    # not blocking: a missing or poor model only leaves its scores empty; nothing downstream waits on it
    return dg.AssetCheckSpec("beats_baseline", asset=key, blocking=False, description=description)


def _not_trained(context: dg.AssetExecutionContext, key: dg.AssetKey, outcome: TrainingOutcome) -> Iterator:
    """The model could not be trained: say why (a warning, with the traceback when it was more than too
    little data), keep any earlier model of this data, and let the run go on."""
    context.log.warning(
        "%s not trained: %s",
        outcome.name,
        outcome.reason,
        exc_info=outcome.error if outcome.unexpected else None,
    )
    yield dg.MaterializeResult(asset_key=key, metadata={"status": "not trained", "reason": outcome.reason})
    yield dg.AssetCheckResult(
        asset_key=key,
        check_name="beats_baseline",
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"not trained: {outcome.reason}",
    )


def _verdict(key: dg.AssetKey, beats: bool, reason: str | None, metadata: dict) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=key,
        check_name="beats_baseline",
        passed=beats,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=metadata,
        description=None if beats else f"not used: {reason}",
    )


def _dropped(dropped: dict[str, str]) -> dict:
    if not dropped:
        return {}
    table = pd.DataFrame({"feature": list(dropped), "left out because": list(dropped.values())})
    return {"dropped_features": dg.MetadataValue.md(table.to_markdown(index=False))}


class TrainConfig(dg.Config):
    """Run config of a model asset: `retrain` trains it now even while the model in the registry is
    fresh (`tideline run --retrain` and the job tideline_retrain set it)."""

    retrain: bool = False


MODEL_KEYS = (CHURN_KEY, PROPENSITY_KEY, CLV_KEY)


def retrain_run_config() -> dict:
    """Run config that retrains every model now, fresh or not (`tideline run --retrain`, the job
    tideline_retrain): the `retrain` config of each model asset's op."""
    return {"ops": {key.to_python_identifier(): {"config": {"retrain": True}} for key in MODEL_KEYS}}


def _training_status(outcome: TrainingOutcome, saved: LoadedModel, models_dir: str) -> dict:
    """What the run did with the model: trained (why) or reused (since when, which version)."""
    meta = saved.metadata
    return {
        "status": "approved" if meta.get("beats_baseline") else "not used",
        "training": f"reused: {outcome.why}" if outcome.reused else f"trained: {outcome.why}",
        "version": saved.version,
        "trained_at": str(meta.get("trained_at", "")),
        "artefact": dg.MetadataValue.path(f"{models_dir}/{saved.name}/{saved.version}"),
    }


def _classifier_metadata(meta: dict) -> dict:
    """The evaluation stored with a classifier (models_ml.training.TrainedModel.metadata), as shown
    in the UI: the same for a model trained now and one reused."""
    m, b = meta.get("metrics", {}), meta.get("baseline_metrics", {})
    figures = {"roc_auc": m, "pr_auc": m, "brier": m, "lift_top_decile": m, "baseline_roc_auc": b}
    shown: dict = {
        key: dg.MetadataValue.float(round(source.get(key.removeprefix("baseline_"), float("nan")), 4))
        for key, source in figures.items()
    }
    comparison = [{"model": "gradient boosting (calibrated)", **m}, {"model": "baseline: recency", **b}]
    shown["model_vs_baseline"] = _md(pd.DataFrame(comparison))
    for key, digits in (("calibration", 3), ("lift_by_decile", 3), ("feature_importance", 4)):
        if meta.get(key):
            shown[key] = _md(pd.DataFrame(meta[key]), digits)
    shown["features_used"] = len(meta.get("features", []))
    shown.update(_dropped(meta.get("dropped_features") or {}))
    shown["training_cutoffs"] = ", ".join(str(c) for c in meta.get("training_cutoffs", []))
    for key in ("evaluation_cutoff", "training_window_end"):
        shown[key] = str(meta.get(key, ""))
    for key in ("training_rows", "training_rows_available", "evaluation_rows"):
        shown[key] = int(meta.get(key) or 0)
    shown["training_seconds"] = float(meta.get("seconds") or 0.0)
    return shown


def _classifier_asset(task: TaskConfig, key: dg.AssetKey, horizon_field: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=key,
        deps=FEATURE_DEPS,
        group_name="ml",
        kinds={"scikitlearn"},
        pool="warehouse",
        description=f"Trains the {task.name} model on past cutoffs (a stratified sample of at most "
        f"max_training_rows rows), checks it on a later held-out cutoff against a recency-only baseline, "
        f"and saves a versioned artefact; while that model is fresh (models_ml/schedule.py: younger than "
        f"retrain_every_days, same settings and data window) it is reused instead. Empty or constant "
        f"features are left out; with too little data it says 'not trained' and the run goes on.",
        check_specs=[
            _beats_baseline_spec(
                key, "ROC AUC on the held-out cutoff is above the recency-only baseline's (else not used)"
            )
        ],
    )
    def _train(
        context: dg.AssetExecutionContext,
        config: TrainConfig,
        warehouse: WarehouseResource,
        pipeline: PipelineSettings,
        ml: MLSettings,
    ) -> Iterator:
        configured = dataclasses.replace(task, horizon_days=getattr(ml, horizon_field))
        training = TrainingConfig(
            training_cutoffs=ml.training_cutoffs,
            cutoff_step_days=ml.cutoff_step_days,
            max_training_rows=ml.max_training_rows,
            seed=ml.seed,
        )
        settings = {
            "task": dataclasses.asdict(configured),
            "training": dataclasses.asdict(training),
            "features": FEATURES,
        }
        with warehouse.connect() as con:
            outcome: TrainingOutcome[TrainedModel] = train_on_schedule(
                con,
                task.name,
                lambda: train_task(con, configured, training),
                lambda trained: trained.model,
                ModelRegistry(ml.models_dir),
                _identity(warehouse, pipeline),
                settings,
                Schedule(ml.retrain_every_days, config.retrain),
            )
        if outcome.saved is None:
            yield from _not_trained(context, key, outcome)
            return
        meta = outcome.saved.metadata
        m, b = meta.get("metrics", {}), meta.get("baseline_metrics", {})
        context.log.info(
            "%s %s %s: ROC AUC %.3f (baseline %.3f)",
            task.name,
            "reused" if outcome.reused else "trained",
            outcome.saved.version,
            m.get("roc_auc", float("nan")),
            b.get("roc_auc", float("nan")),
        )
        yield dg.MaterializeResult(
            asset_key=key,
            metadata={
                **_training_status(outcome, outcome.saved, ml.models_dir),
                **_classifier_metadata(meta),
            },
        )
        yield _verdict(
            key,
            bool(meta.get("beats_baseline")),
            meta.get("reason"),
            {"roc_auc": m.get("roc_auc", float("nan")), "baseline_roc_auc": b.get("roc_auc", float("nan"))},
        )

    return _train


churn_model = _classifier_asset(CHURN, CHURN_KEY, "churn_horizon_days")
propensity_model = _classifier_asset(PROPENSITY, PROPENSITY_KEY, "propensity_horizon_days")


@dg.asset(
    key=CLV_KEY,
    deps=FEATURE_DEPS,
    group_name="ml",
    kinds={"scipy"},
    pool="warehouse",
    description="Fits BG/NBD (purchases, P(alive)) and Gamma-Gamma (spend) by maximum likelihood on orders "
    "with a positive amount; checks predicted purchases on a held-out window against the naive historical "
    "rate. Reused while fresh, like the classifiers (models_ml/schedule.py). With too little data it says "
    "'not trained' and the run goes on.",
    check_specs=[
        _beats_baseline_spec(CLV_KEY, "held-out mean absolute error of purchases below the naive rate's")
    ],
)
def clv_model(
    context: dg.AssetExecutionContext,
    config: TrainConfig,
    warehouse: WarehouseResource,
    pipeline: PipelineSettings,
    ml: MLSettings,
) -> Iterator:
    settings = {"horizon_days": ml.clv_horizon_days, "holdout_days": ml.clv_holdout_days}
    with warehouse.connect() as con:
        outcome: TrainingOutcome[TrainedCLV] = train_on_schedule(
            con,
            "clv",
            lambda: train_clv(con, horizon_days=ml.clv_horizon_days, holdout_days=ml.clv_holdout_days),
            lambda trained: trained.model(),
            ModelRegistry(ml.models_dir),
            _identity(warehouse, pipeline),
            settings,
            Schedule(ml.retrain_every_days, config.retrain),
        )
    if outcome.saved is None:
        yield from _not_trained(context, CLV_KEY, outcome)
        return
    meta = outcome.saved.metadata
    metrics = meta.get("metrics", {})
    yield dg.MaterializeResult(
        asset_key=CLV_KEY,
        metadata={
            **_training_status(outcome, outcome.saved, ml.models_dir),
            "purchase_model": str(meta.get("purchase_model", "")),
            "bgnbd": dg.MetadataValue.json(_rounded(meta, "bgnbd")),
            "gamma_gamma": dg.MetadataValue.json(_rounded(meta, "gamma_gamma")),
            **{k: dg.MetadataValue.float(round(float(v), 4)) for k, v in metrics.items()},
            "customers": int(meta.get("customers") or 0),
            "training_window_end": str(meta.get("training_window_end", "")),
        },
    )
    yield _verdict(
        CLV_KEY,
        bool(meta.get("beats_baseline")),
        meta.get("reason"),
        {"mae": metrics.get("mae", float("nan")), "baseline_mae": metrics.get("baseline_mae", float("nan"))},
    )


@dg.asset(
    key=SCORES_KEY,
    deps=[*FEATURE_DEPS, CHURN_KEY, PROPENSITY_KEY, CLV_KEY],
    group_name="ml",
    kinds={"duckdb", "scikitlearn"},
    pool="warehouse",
    description="Scores every customer with the latest approved models trained on this data and writes "
    "ml.customer_scores (plus ml.customer_score_reasons for the at-risk list, and ml.score_models: which "
    "model scored, or why it was skipped). A missing model leaves its columns null. When the model "
    "versions, the as-of date and the feature tables are those of the last scoring, the tables are left "
    "as they were (metadata 'reused').",
    check_specs=[
        dg.AssetCheckSpec(
            "score_drift", asset=SCORES_KEY, description="churn-score distribution vs the previous run (PSI)"
        )
    ],
)
def customer_scores(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    pipeline: PipelineSettings,
    ml: MLSettings,
) -> Iterator:
    as_of = dt.date.fromisoformat(pipeline.as_of) if pipeline.as_of else dt.date.today()
    with warehouse.connect() as con:
        outcome = score_unless_unchanged(
            con,
            ModelRegistry(ml.models_dir),
            _identity(warehouse, pipeline),
            as_of,
            ml.at_risk_threshold,
            run_id=context.run_id,
            fingerprints=table_fingerprints,
        )
        if outcome.reused is not None:
            yield from _scores_reused(context, outcome.reused, as_of)
            return
    for row in outcome.models:
        if row["status"] != "scored":
            context.log.warning("%s: not scored: %s", row["model"], row["reason"])
    scores, psi = outcome.scores, outcome.psi
    yield dg.MaterializeResult(
        asset_key=SCORES_KEY, metadata=_scores_metadata(scores, outcome.models, outcome.reasons, as_of, ml)
    )
    yield dg.AssetCheckResult(
        asset_key=SCORES_KEY,
        check_name="score_drift",
        passed=psi is None or psi <= ml.drift_psi_warn,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"psi": -1.0 if psi is None else round(psi, 4), "threshold": ml.drift_psi_warn},
        description="nothing to compare (first churn scores, or no churn model)" if psi is None else None,
    )


def _scores_reused(context: dg.AssetExecutionContext, last: LastScoring, as_of: dt.date) -> Iterator:
    """The scores of an earlier run stand (nothing they are computed from changed): say since when; the
    asset still materialises, so that what depends on it runs."""
    context.log.info("customer scores reused: inputs unchanged since %s", last.since)
    yield dg.MaterializeResult(
        asset_key=SCORES_KEY,
        metadata={
            "reused": f"inputs unchanged since {last.since}",
            "dagster/row_count": dg.MetadataValue.int(last.rows),
            "as_of": str(as_of),
        },
    )
    yield dg.AssetCheckResult(
        asset_key=SCORES_KEY,
        check_name="score_drift",
        passed=True,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"psi": 0.0},
        description="the scores were not recomputed (inputs unchanged): no drift",
    )


def _scores_metadata(
    scores: pd.DataFrame, used: list[dict], reasons: pd.DataFrame, as_of: dt.date, ml: MLSettings
) -> dict:
    """Counts, which model scored (or why not) and the most valuable at-risk customers (ids only)."""
    at_risk = scores["churn_probability"] >= ml.at_risk_threshold
    models = pd.DataFrame(used)[["model", "status", "version", "customers", "reason"]].fillna("")
    metadata = {
        "dagster/row_count": dg.MetadataValue.int(len(scores)),
        "as_of": str(as_of),
        "models": _md(models),
        "customers_with_churn_score": int(scores["churn_probability"].notna().sum()),
        "customers_with_propensity": int(scores["purchase_propensity"].notna().sum()),
        "customers_with_clv": int(scores["predicted_clv"].notna().sum()),
        "at_risk": int(at_risk.sum()),
        "reasons_rows": len(reasons),
    }
    if scores["purchase_propensity"].notna().any():
        metadata["mean_purchase_propensity"] = round(float(scores["purchase_propensity"].mean()), 4)
    if scores["predicted_clv"].notna().any():
        metadata["predicted_clv_total"] = round(float(scores["predicted_clv"].sum()), 2)
    if at_risk.any():
        preview = (
            scores[at_risk]
            .sort_values("predicted_clv", ascending=False)
            .head(10)[["customer_id", "churn_probability", "purchase_propensity", "p_alive", "predicted_clv"]]
        )
        preview = preview[shown_columns(preview.columns)]  # previews show allow-listed columns only
        metadata["most_valuable_at_risk"] = _md(preview)
    return metadata


ml_assets = [churn_model, propensity_model, clv_model, customer_scores]
