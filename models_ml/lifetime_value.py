"""Fit and check the CLV models (BG/NBD + Gamma-Gamma, models_ml.clv) on warehouse purchases.

The purchase model is BG/NBD or its MBG/NBD variant, whichever has the higher
likelihood on the data. The held-out check mirrors the classifiers': fit on purchases up to `end - horizon`,
predict each customer's purchases in the following `horizon` days, and compare
with what they actually bought there. The baseline is the naive rate: past
repeat purchases per day of tenure times the horizon. BG/NBD must beat it on mean
absolute error to pass. The fit used for scoring is then made on all purchases
up to `end`.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from models_ml import clv
from models_ml.features import WAREHOUSE, FeatureSources, build_labels, data_end
from models_ml.training import InsufficientData

TRANSACTIONS_SQL = (
    "select customer_id, ordered_at, amount from {orders} where is_purchase and ordered_at < $cutoff_end"
)


@dataclass
class TrainedCLV:
    bg: clv.BetaGeoParams
    gg: clv.GammaGammaParams
    horizon_days: int
    evaluation_cutoff: dt.date
    end: dt.date
    metrics: dict
    customers: int
    seconds: float

    @property
    def beats_baseline(self) -> bool:
        return self.metrics["mae"] < self.metrics["baseline_mae"]

    def model(self) -> dict:
        return {"bg": self.bg, "gg": self.gg, "horizon_days": self.horizon_days}

    def metadata(self) -> dict:
        return {
            "task": "clv",
            "horizon_days": self.horizon_days,
            "evaluation_cutoff": str(self.evaluation_cutoff),
            "training_window_end": str(self.end),
            "purchase_model": self.bg.variant,
            "bgnbd": vars(self.bg),
            "gamma_gamma": vars(self.gg),
            "metrics": self.metrics,
            "beats_baseline": self.beats_baseline,
            "customers": self.customers,
            "seconds": round(self.seconds, 1),
        }


def transactions(con: duckdb.DuckDBPyConnection, cutoff: dt.date, sources: FeatureSources = WAREHOUSE):
    cutoff_end = dt.datetime.combine(cutoff + dt.timedelta(days=1), dt.time())
    return con.execute(TRANSACTIONS_SQL.format(orders=sources.orders), {"cutoff_end": cutoff_end}).df()


def fit(summary: pd.DataFrame) -> tuple[clv.BetaGeoParams, clv.GammaGammaParams]:
    """BG/NBD or MBG/NBD, whichever fits better (same parameters, so log-likelihoods compare), plus
    Gamma-Gamma on repeat buyers. MBG/NBD lets customers leave after their first purchase too, so
    one-time buyers do not all get P(alive) = 1."""
    bg = clv.select_beta_geo(summary["frequency"], summary["recency"], summary["T"]).params
    repeat = summary[summary["frequency"] > 0]
    gg = clv.fit_gamma_gamma(repeat["frequency"], repeat["monetary_value"], penalizer=0.0).params
    return bg, gg


def train_clv(
    con: duckdb.DuckDBPyConnection,
    horizon_days: int = 365,
    holdout_days: int = 90,
    sources: FeatureSources = WAREHOUSE,
    end: dt.date | None = None,
) -> TrainedCLV:
    started = time.monotonic()
    end = end or data_end(con, sources)
    if end is None:
        raise InsufficientData("clv: no purchases in the warehouse")
    evaluation_cutoff = end - dt.timedelta(days=holdout_days)

    calibration = clv.rfm_summary(transactions(con, evaluation_cutoff, sources), evaluation_cutoff)
    repeaters = int((calibration["frequency"] > 0).sum()) if len(calibration) else 0
    if len(calibration) < 50 or repeaters < 20:
        raise InsufficientData(
            f"clv: {len(calibration)} buyers ({repeaters} with repeat purchases) before {evaluation_cutoff}; "
            "needs at least 50 buyers and 20 repeat buyers"
        )
    bg_cal, _ = fit(calibration)
    predicted = clv.expected_purchases(
        bg_cal, holdout_days, calibration["frequency"], calibration["recency"], calibration["T"]
    )
    actual = (
        build_labels(con, evaluation_cutoff, holdout_days, sources)["future_purchases"]
        .reindex(calibration.index)
        .fillna(0.0)
        .to_numpy()
    )
    naive = (calibration["frequency"] / calibration["T"].clip(lower=1)).to_numpy() * holdout_days
    metrics = {
        "holdout_days": holdout_days,
        "mae": float(np.mean(np.abs(predicted - actual))),
        "baseline_mae": float(np.mean(np.abs(naive - actual))),
        "correlation": float(np.corrcoef(predicted, actual)[0, 1]),
        "predicted_total": float(predicted.sum()),
        "actual_total": float(actual.sum()),
        "spend_frequency_correlation": float(
            clv.spend_frequency_correlation(
                calibration.loc[calibration["frequency"] > 0, "frequency"],
                calibration.loc[calibration["frequency"] > 0, "monetary_value"],
            )
        ),
    }

    summary = clv.rfm_summary(transactions(con, end, sources), end)
    bg, gg = fit(summary)
    return TrainedCLV(
        bg, gg, horizon_days, evaluation_cutoff, end, metrics, len(summary), time.monotonic() - started
    )
