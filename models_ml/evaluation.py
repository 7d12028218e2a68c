"""Model evaluation a marketer can read: ranking (ROC AUC, PR AUC), calibration (Brier, table),
lift by decile, and the population stability index (PSI) for score drift."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score


@dataclass(frozen=True)
class Metrics:
    roc_auc: float
    pr_auc: float
    brier: float
    base_rate: float
    lift_top_decile: float
    n: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _check(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=float)
    s = np.asarray(y_score, dtype=float)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"y_true and y_score must be 1-d of the same length, got {y.shape} and {s.shape}")
    if len(y) == 0 or np.unique(y).size < 2:
        raise ValueError("evaluation needs both classes in y_true")
    return y, s


def lift_by_decile(y_true: np.ndarray, y_score: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Decile 1 = the highest scores. lift = the decile's positive rate / the overall rate."""
    y, s = _check(y_true, y_score)
    order = np.argsort(-s, kind="stable")
    groups = np.array_split(order, bins)
    base = y.mean()
    rows = []
    for i, idx in enumerate(groups, start=1):
        rate = y[idx].mean() if len(idx) else np.nan
        rows.append(
            {
                "decile": i,
                "customers": len(idx),
                "min_score": float(s[idx].min()) if len(idx) else np.nan,
                "positive_rate": float(rate),
                "lift": float(rate / base) if base > 0 else np.nan,
                "cumulative_capture": float(y[np.concatenate(groups[:i])].sum() / y.sum()),
            }
        )
    return pd.DataFrame(rows)


def calibration_table(y_true: np.ndarray, y_prob: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Equal-count bins of predicted probability: mean predicted vs observed rate per bin."""
    y, p = _check(y_true, y_prob)
    order = np.argsort(p, kind="stable")
    rows = []
    for i, idx in enumerate(np.array_split(order, bins), start=1):
        if len(idx) == 0:
            continue
        rows.append(
            {
                "bin": i,
                "customers": len(idx),
                "mean_predicted": float(p[idx].mean()),
                "observed_rate": float(y[idx].mean()),
            }
        )
    return pd.DataFrame(rows)


def evaluate(y_true: np.ndarray, y_prob: np.ndarray) -> Metrics:
    y, p = _check(y_true, y_prob)
    lift = lift_by_decile(y, p)
    return Metrics(
        roc_auc=float(roc_auc_score(y, p)),
        pr_auc=float(average_precision_score(y, p)),
        brier=float(brier_score_loss(y, np.clip(p, 0, 1))),
        base_rate=float(y.mean()),
        lift_top_decile=float(lift.loc[0, "lift"]),
        n=int(len(y)),
    )


def population_stability_index(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """PSI = sum((a - e) * ln(a / e)) over bins cut at the expected distribution's quantiles.
    Rule of thumb: < 0.1 stable, 0.1–0.25 some shift, > 0.25 a large shift."""
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    e, a = e[~np.isnan(e)], a[~np.isnan(a)]
    if len(e) == 0 or len(a) == 0:
        raise ValueError("PSI needs two non-empty score samples")
    edges = np.unique(np.quantile(e, np.linspace(0, 1, bins + 1)))
    if len(edges) < 3:  # (almost) constant expected scores: compare on a fixed grid instead
        edges = np.linspace(min(e.min(), a.min()), max(e.max(), a.max()) + 1e-12, bins + 1)
    inner = edges[1:-1]
    e_share = np.bincount(np.searchsorted(inner, e, side="right"), minlength=len(edges) - 1) / len(e)
    a_share = np.bincount(np.searchsorted(inner, a, side="right"), minlength=len(edges) - 1) / len(a)
    eps = 1e-6
    e_share, a_share = np.clip(e_share, eps, None), np.clip(a_share, eps, None)
    return float(np.sum((a_share - e_share) * np.log(a_share / e_share)))
