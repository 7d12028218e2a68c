"""Fit and check the CLV models (BG/NBD + Gamma-Gamma, models_ml.clv) on warehouse purchases.

The purchase model is BG/NBD or its MBG/NBD variant, whichever has the higher
likelihood on the data. The held-out check mirrors the classifiers': fit on purchases up to `end - horizon`,
predict each customer's purchases in the following `horizon` days, and compare
with what they actually bought there. The baseline is the naive rate: past
repeat purchases per day of tenure times the horizon. BG/NBD must beat it on mean
absolute error to pass. The fit used for scoring is then made on all purchases
up to `end`.

Amounts: lifetime value counts only orders with a positive amount. An order of
amount 0 (a free item, a fully discounted order) spends nothing, and the Gamma-Gamma
spend model is defined for positive spend only, so such an order is neither a
purchase day for BG/NBD nor spend for Gamma-Gamma here (the churn and propensity
features still count it as an order). Negative amounts are rejected by staging
(`marts.rejects`); should a source hand one over anyway, the same rule leaves it out.
A customer whose completed orders all have amount 0 gets no lifetime-value scores.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from models_ml import clv
from models_ml.features import WAREHOUSE, FeatureSources, cutoff_end, data_end
from models_ml.training import InsufficientData

# Purchases for lifetime value: completed orders with a positive amount (see the module docstring).
TRANSACTIONS_SQL = (
    "select customer_id, ordered_at, amount from {orders} "
    "where is_purchase and amount > 0 and ordered_at < $cutoff_end"
)
HOLDOUT_SQL = (
    "select customer_id, count(*) as purchases from {orders} "
    "where is_purchase and amount > 0 and ordered_at >= $start and ordered_at < $stop group by customer_id"
)
MIN_BUYERS = 50
MIN_REPEAT_BUYERS = 20


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

    @property
    def status(self) -> str:
        """approved (used for scoring) or not_used (no better than the naive rate)."""
        return "approved" if self.beats_baseline else "not_used"

    @property
    def reason(self) -> str | None:
        if self.beats_baseline:
            return None
        return (
            f"no better than the naive rate on the {self.metrics['holdout_days']} held-out days after "
            f"{self.evaluation_cutoff}: purchases MAE {self.metrics['mae']:.3f} vs {self.metrics['baseline_mae']:.3f}"
        )

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
            "status": self.status,
            "reason": self.reason,
            "customers": self.customers,
            "seconds": round(self.seconds, 1),
        }


def transactions(con: duckdb.DuckDBPyConnection, cutoff: dt.date, sources: FeatureSources = WAREHOUSE):
    """Purchases with a positive amount up to the end of the cutoff day (customer_id, ordered_at, amount)."""
    return con.execute(
        TRANSACTIONS_SQL.format(orders=sources.orders), {"cutoff_end": cutoff_end(cutoff)}
    ).df()


def holdout_purchases(
    con: duckdb.DuckDBPyConnection, cutoff: dt.date, days: int, sources: FeatureSources = WAREHOUSE
) -> pd.Series:
    """Purchases with a positive amount per customer in the `days` after the cutoff day (buyers only)."""
    start = cutoff_end(cutoff)
    rows = con.execute(
        HOLDOUT_SQL.format(orders=sources.orders), {"start": start, "stop": start + dt.timedelta(days=days)}
    ).df()
    return rows.set_index("customer_id")["purchases"].astype("float64")


def fit(summary: pd.DataFrame) -> tuple[clv.BetaGeoParams, clv.GammaGammaParams]:
    """BG/NBD or MBG/NBD, whichever fits better (same parameters, so log-likelihoods compare), plus
    Gamma-Gamma on repeat buyers. MBG/NBD lets customers leave after their first purchase too, so
    one-time buyers do not all get P(alive) = 1."""
    bg = clv.select_beta_geo(summary["frequency"], summary["recency"], summary["T"]).params
    repeat = summary[summary["frequency"] > 0]
    gg = clv.fit_gamma_gamma(repeat["frequency"], repeat["monetary_value"], penalizer=0.0).params
    return bg, gg


def _require_finite_spend(gg: clv.GammaGammaParams, repeat_buyers: int) -> None:
    """A customer without repeat purchases gets the population mean spend p v / (q - 1): finite only
    when q > 1, so a fit with q <= 1 cannot score (models_ml.clv.expected_average_spend raises)."""
    if gg.q <= 1.0:
        raise InsufficientData(
            f"the Gamma-Gamma spend model fitted q = {gg.q:.3g} (it must exceed 1 for a finite expected "
            f"spend): the spend of the {repeat_buyers} repeat buyers is too uneven or too little to model"
        )


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
        raise InsufficientData("no purchases in the warehouse")
    evaluation_cutoff = end - dt.timedelta(days=holdout_days)

    calibration = clv.rfm_summary(transactions(con, evaluation_cutoff, sources), evaluation_cutoff)
    repeaters = int((calibration["frequency"] > 0).sum()) if len(calibration) else 0
    if len(calibration) < MIN_BUYERS or repeaters < MIN_REPEAT_BUYERS:
        raise InsufficientData(
            f"not enough data before the held-out {holdout_days} days ({evaluation_cutoff}): "
            f"{len(calibration)} buyers with a positive amount, {repeaters} of them bought again on a later day "
            f"(need at least {MIN_BUYERS} buyers and {MIN_REPEAT_BUYERS} repeat buyers); the orders end on {end}"
        )
    bg_cal, _ = fit(calibration)
    predicted = clv.expected_purchases(
        bg_cal, holdout_days, calibration["frequency"], calibration["recency"], calibration["T"]
    )
    if not np.all(np.isfinite(predicted)):
        raise InsufficientData("the purchase model's held-out predictions are not finite numbers")
    actual = (
        holdout_purchases(con, evaluation_cutoff, holdout_days, sources)
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
    _require_finite_spend(gg, int((summary["frequency"] > 0).sum()))
    return TrainedCLV(
        bg, gg, horizon_days, evaluation_cutoff, end, metrics, len(summary), time.monotonic() - started
    )
