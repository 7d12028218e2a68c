"""Top reasons per customer, in words: which features push this customer's score up the most.

For each customer and feature, the feature is set to its typical value (the
population median) and the drop in predicted probability is its effect. The
features with the largest positive effects are the reasons, e.g.
"days since last purchase: 240 (typical 45)". Cheap enough for the few thousand
customers on an at-risk list: one batch prediction per feature.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from models_ml.features import FEATURE_LABELS


def top_reasons(model: Any, features: pd.DataFrame, reference: pd.DataFrame, top: int = 3) -> pd.DataFrame:
    """Long table (customer_id, reason_rank, feature, value, typical_value, effect, reason)."""
    if features.empty:
        return pd.DataFrame(
            columns=["customer_id", "reason_rank", "feature", "value", "typical_value", "effect", "reason"]
        )
    x = features.to_numpy(dtype=float)
    typical = reference.median(numeric_only=True).reindex(features.columns).to_numpy(dtype=float)
    base = model.predict_proba(x)[:, 1]
    effects = np.zeros_like(x)
    for j in range(x.shape[1]):
        changed = x.copy()
        changed[:, j] = typical[j]
        effects[:, j] = base - model.predict_proba(changed)[:, 1]
    order = np.argsort(-effects, axis=1)[:, :top]
    rows = []
    for i, customer in enumerate(features.index):
        for rank, j in enumerate(order[i], start=1):
            if effects[i, j] <= 0:
                break
            name = features.columns[j]
            rows.append(
                {
                    "customer_id": customer,
                    "reason_rank": rank,
                    "feature": name,
                    "value": x[i, j],
                    "typical_value": typical[j],
                    "effect": float(effects[i, j]),
                    "reason": f"{FEATURE_LABELS.get(name, name)}: {_fmt(x[i, j])} (typical {_fmt(typical[j])})",
                }
            )
    return pd.DataFrame(rows)


def _fmt(v: float) -> str:
    if np.isnan(v):
        return "none"
    return f"{v:,.0f}" if abs(v) >= 10 or float(v).is_integer() else f"{v:,.2f}"
