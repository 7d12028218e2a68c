"""Jobs and schedules.

tideline_pipeline   everything, models included (what `make run` / `tideline run` execute); a model
                    is retrained only when due (models_ml/schedule.py), else reused
tideline_daily      landing, dbt, scoring with the latest approved models, score-based marts
tideline_retrain    retrain the three models now (fresh or not), then rescore and rebuild the
                    score-based marts
"""

import dagster as dg

from orchestration.ml import CHURN_KEY, CLV_KEY, PROPENSITY_KEY, SCORES_KEY, retrain_run_config

MODELS = dg.AssetSelection.assets(CHURN_KEY, PROPENSITY_KEY, CLV_KEY)

pipeline_job = dg.define_asset_job(
    "tideline_pipeline",
    selection=dg.AssetSelection.all(),
    description="Load the landing zone, build every dbt model, train and score the models, run every check.",
)

daily_scoring_job = dg.define_asset_job(
    "tideline_daily",
    selection=dg.AssetSelection.all() - MODELS,
    description="Reload the landing zone, rebuild the marts and rescore every customer with the latest "
    "approved models.",
)

retrain_job = dg.define_asset_job(
    "tideline_retrain",
    selection=MODELS | dg.AssetSelection.assets(SCORES_KEY).downstream(),
    config=retrain_run_config(),
    description="Retrain churn, propensity and CLV models, then rescore and rebuild the score-based marts.",
)

daily_refresh = dg.ScheduleDefinition(
    name="daily_refresh",
    job=daily_scoring_job,
    cron_schedule="0 6 * * *",
    execution_timezone="UTC",
    description="Every day at 06:00 UTC: reload, rebuild the marts and rescore as of today.",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)

weekly_retrain = dg.ScheduleDefinition(
    name="weekly_retrain",
    job=retrain_job,
    cron_schedule="0 4 * * 1",
    execution_timezone="UTC",
    description="Mondays at 04:00 UTC: retrain the models (a model that does not beat its baseline is not used).",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
