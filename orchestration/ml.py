"""Predictive-score assets: thin wrappers around models_ml (plain, tested Python)."""

import dataclasses
import datetime as dt
from collections.abc import Iterator

import dagster as dg
import pandas as pd

from models_ml.lifetime_value import train_clv
from models_ml.registry import ModelNotFound, ModelRegistry
from models_ml.scoring import at_risk_reasons, record_model_run, score_customers, write_scores
from models_ml.training import CHURN, PROPENSITY, InsufficientData, TaskConfig, TrainingConfig, train_task
from orchestration.metadata import shown_columns
from orchestration.resources import MLSettings, PipelineSettings, WarehouseResource

FEATURE_DEPS = [
    dg.AssetKey(["intermediate", "int_orders_resolved"]),
    dg.AssetKey(["intermediate", "int_order_items_joined"]),
    dg.AssetKey(["intermediate", "int_events_stitched"]),
    dg.AssetKey(["marts", "dim_customers"]),
]
CHURN_KEY = dg.AssetKey(["ml", "churn_model"])
PROPENSITY_KEY = dg.AssetKey(["ml", "propensity_model"])
CLV_KEY = dg.AssetKey(["ml", "clv_model"])
SCORES_KEY = dg.AssetKey(["ml", "customer_scores"])


def _md(df: pd.DataFrame, digits: int = 3) -> dg.MetadataValue:
    return dg.MetadataValue.md(df.round(digits).to_markdown(index=False))


def _not_trained(context: dg.AssetExecutionContext, key: dg.AssetKey, reason: str) -> Iterator:
    """Too little data to train: say so (a warning), keep any earlier model, and let the run go on."""
    context.log.warning("not trained: %s", reason)
    yield dg.MaterializeResult(asset_key=key, metadata={"status": "not trained", "reason": reason})
    yield dg.AssetCheckResult(
        asset_key=key,
        check_name="beats_baseline",
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"not trained: {reason}",
    )


def _classifier_asset(task: TaskConfig, key: dg.AssetKey, horizon_field: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=key,
        deps=FEATURE_DEPS,
        group_name="ml",
        kinds={"scikitlearn"},
        pool="warehouse",
        description=f"Trains the {task.name} model on past cutoffs, checks it on a later held-out cutoff "
        f"against a recency-only baseline, and saves a versioned artefact.",
        check_specs=[
            dg.AssetCheckSpec(
                "beats_baseline",
                asset=key,
                blocking=True,
                description="ROC AUC on the held-out cutoff is above the recency-only baseline's",
            )
        ],
    )
    def _train(context: dg.AssetExecutionContext, warehouse: WarehouseResource, ml: MLSettings) -> Iterator:
        configured = dataclasses.replace(task, horizon_days=getattr(ml, horizon_field))
        config = TrainingConfig(
            training_cutoffs=ml.training_cutoffs,
            cutoff_step_days=ml.cutoff_step_days,
            max_training_rows=ml.max_training_rows,
            seed=ml.seed,
        )
        with warehouse.connect(read_only=True) as con:
            try:
                trained = train_task(con, configured, config)
            except InsufficientData as exc:
                yield from _not_trained(context, key, str(exc))
                return
        saved = ModelRegistry(ml.models_dir).save(task.name, trained.model, trained.metadata())
        with warehouse.connect() as con:
            record_model_run(con, saved)
        m, b = trained.metrics, trained.baseline_metrics
        context.log.info(
            "%s %s: ROC AUC %.3f (baseline %.3f), lift top decile %.2f",
            task.name,
            saved.version,
            m.roc_auc,
            b.roc_auc,
            m.lift_top_decile,
        )
        comparison = pd.DataFrame(
            [
                {"model": "gradient boosting (calibrated)", **m.as_dict()},
                {"model": "baseline: recency", **b.as_dict()},
            ]
        )
        yield dg.MaterializeResult(
            asset_key=key,
            metadata={
                "version": saved.version,
                "roc_auc": dg.MetadataValue.float(round(m.roc_auc, 4)),
                "pr_auc": dg.MetadataValue.float(round(m.pr_auc, 4)),
                "brier": dg.MetadataValue.float(round(m.brier, 4)),
                "lift_top_decile": dg.MetadataValue.float(round(m.lift_top_decile, 3)),
                "baseline_roc_auc": dg.MetadataValue.float(round(b.roc_auc, 4)),
                "model_vs_baseline": _md(comparison),
                "calibration": _md(trained.calibration),
                "lift_by_decile": _md(trained.lift),
                "feature_importance": _md(trained.importance.head(12), 4),
                "training_cutoffs": ", ".join(str(c) for c in trained.training_cutoffs),
                "evaluation_cutoff": str(trained.evaluation_cutoff),
                "training_rows": trained.training_rows,
                "evaluation_rows": trained.evaluation_rows,
                "artefact": dg.MetadataValue.path(f"{ml.models_dir}/{task.name}/{saved.version}"),
                "seconds": round(trained.seconds, 1),
            },
        )
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name="beats_baseline",
            passed=trained.beats_baseline,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"roc_auc": m.roc_auc, "baseline_roc_auc": b.roc_auc},
            description=None
            if trained.beats_baseline
            else "the model is no better than recency alone; not used",
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
    description="Fits BG/NBD (purchases, P(alive)) and Gamma-Gamma (spend) by maximum likelihood; checks "
    "predicted purchases on a held-out window against the naive historical rate.",
    check_specs=[
        dg.AssetCheckSpec(
            "beats_baseline",
            asset=CLV_KEY,
            blocking=True,
            description="held-out mean absolute error of purchases below the naive rate's",
        )
    ],
)
def clv_model(context: dg.AssetExecutionContext, warehouse: WarehouseResource, ml: MLSettings) -> Iterator:
    with warehouse.connect(read_only=True) as con:
        try:
            trained = train_clv(con, horizon_days=ml.clv_horizon_days, holdout_days=ml.clv_holdout_days)
        except InsufficientData as exc:
            yield from _not_trained(context, CLV_KEY, str(exc))
            return
    saved = ModelRegistry(ml.models_dir).save("clv", trained.model(), trained.metadata())
    with warehouse.connect() as con:
        record_model_run(con, saved)
    yield dg.MaterializeResult(
        asset_key=CLV_KEY,
        metadata={
            "version": saved.version,
            "purchase_model": trained.bg.variant,
            "bgnbd": dg.MetadataValue.json(
                {k: round(v, 5) if isinstance(v, float) else v for k, v in vars(trained.bg).items()}
            ),
            "gamma_gamma": dg.MetadataValue.json({k: round(v, 5) for k, v in vars(trained.gg).items()}),
            **{k: dg.MetadataValue.float(round(float(v), 4)) for k, v in trained.metrics.items()},
            "customers": trained.customers,
            "artefact": dg.MetadataValue.path(f"{ml.models_dir}/clv/{saved.version}"),
        },
    )
    yield dg.AssetCheckResult(
        asset_key=CLV_KEY,
        check_name="beats_baseline",
        passed=trained.beats_baseline,
        metadata={"mae": trained.metrics["mae"], "baseline_mae": trained.metrics["baseline_mae"]},
    )


@dg.asset(
    key=SCORES_KEY,
    deps=[*FEATURE_DEPS, CHURN_KEY, PROPENSITY_KEY, CLV_KEY],
    group_name="ml",
    kinds={"duckdb", "scikitlearn"},
    pool="warehouse",
    description="Scores every customer with the latest approved models and writes ml.customer_scores "
    "(plus ml.customer_score_reasons for the at-risk list).",
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
    registry = ModelRegistry(ml.models_dir)
    try:
        churn, propensity, lifetime = (registry.load(n) for n in ("churn", "propensity", "clv"))
    except ModelNotFound as exc:
        context.log.warning("not scoring: %s", exc)
        yield dg.MaterializeResult(
            asset_key=SCORES_KEY, metadata={"status": "not scored", "reason": str(exc)}
        )
        yield dg.AssetCheckResult(
            asset_key=SCORES_KEY, check_name="score_drift", passed=True, description=f"not scored: {exc}"
        )
        return
    with warehouse.connect(read_only=True) as con:
        as_of = dt.date.fromisoformat(pipeline.as_of) if pipeline.as_of else dt.date.today()
        scores, features = score_customers(con, as_of, churn, propensity, lifetime)
    reasons = at_risk_reasons(churn, features, scores, threshold=ml.at_risk_threshold)
    with warehouse.connect() as con:
        psi = write_scores(con, scores, reasons)
    at_risk = scores["churn_probability"] >= ml.at_risk_threshold
    preview = (
        scores[at_risk]
        .sort_values("predicted_clv", ascending=False)
        .head(10)[["customer_id", "churn_probability", "purchase_propensity", "p_alive", "predicted_clv"]]
    )
    preview = preview[shown_columns(preview.columns)]  # previews show allow-listed columns only
    yield dg.MaterializeResult(
        asset_key=SCORES_KEY,
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(scores)),
            "as_of": str(as_of),
            "models": scores["model_version"].iloc[0] if len(scores) else "",
            "customers_with_churn_score": int(scores["churn_probability"].notna().sum()),
            "at_risk": int(at_risk.sum()),
            "mean_purchase_propensity": round(float(scores["purchase_propensity"].mean()), 4),
            "predicted_clv_total": round(float(scores["predicted_clv"].sum()), 2),
            "most_valuable_at_risk": _md(preview),
            "reasons_rows": len(reasons),
        },
    )
    yield dg.AssetCheckResult(
        asset_key=SCORES_KEY,
        check_name="score_drift",
        passed=psi is None or psi <= ml.drift_psi_warn,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"psi": -1.0 if psi is None else round(psi, 4), "threshold": ml.drift_psi_warn},
        description="first scoring run: nothing to compare" if psi is None else None,
    )


ml_assets = [churn_model, propensity_model, clv_model, customer_scores]
