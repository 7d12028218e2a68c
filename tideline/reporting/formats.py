"""Numbers for people: the one set of formatters the campaign report and the console summary use.

Missing values (None, NaN, pandas' NA) print as `missing`: an em dash in the report, "-" in the
plain-text summary. Shares are fractions in [0, 1] (0.412 prints as 41.2%); differences of shares
print as signed percentage points.

Also the one order of lifecycle stages both show (STAGE_ORDER).
"""

from __future__ import annotations

import math

DASH = "—"
STAGE_ORDER = ("prospect", "new", "active", "reactivated", "at_risk", "churned")


def is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return type(value).__name__ == "NAType"  # pandas.NA, without importing pandas


def share(numerator: object, denominator: object) -> float | None:
    """numerator / denominator; None when either is missing or the denominator is 0."""
    if is_missing(numerator) or is_missing(denominator) or not float(denominator):
        return None
    return float(numerator) / float(denominator)


def fmt_int(value: object, missing: str = DASH) -> str:
    """A count: 1,234."""
    return missing if is_missing(value) else f"{round(float(value)):,}"


def fmt_num(value: object, digits: int = 1, missing: str = DASH) -> str:
    return missing if is_missing(value) else f"{float(value):,.{digits}f}"


def fmt_money(value: object, missing: str = DASH) -> str:
    """Money: 1,234.50."""
    return missing if is_missing(value) else f"{float(value):,.2f}"


def fmt_amount(value: object, missing: str = DASH) -> str:
    """Money that may be a fraction of a cent (sending fees): two significant digits below 0.01,
    so 0.0046 does not read as 0.00."""
    if is_missing(value):
        return missing
    v = float(value)
    return f"{v:.2g}" if 0 < abs(v) < 0.005 else fmt_money(v)


def fmt_pct(share_: object, digits: int = 1, missing: str = DASH) -> str:
    """A share in [0, 1] as a percentage: 41.2%."""
    return missing if is_missing(share_) else f"{100 * float(share_):.{digits}f}%"


def fmt_rate(numerator: object, denominator: object, digits: int = 1, missing: str = DASH) -> str:
    """numerator / denominator as a percentage (`missing` when the denominator is 0 or missing)."""
    return fmt_pct(share(numerator, denominator), digits, missing)


def fmt_pp(share_: object, digits: int = 1, missing: str = DASH, unit: str = "pp") -> str:
    """A difference of shares as signed percentage points: +2.5 pp."""
    return missing if is_missing(share_) else f"{100 * float(share_):+.{digits}f} {unit}"


def fmt_signed_pct(share_: object, digits: int = 0, missing: str = DASH) -> str:
    """A relative change as a signed percentage: +266%."""
    return missing if is_missing(share_) else f"{100 * float(share_):+.{digits}f}%"


def fmt_p(p: object, missing: str = DASH) -> str:
    """A p-value: p = 0.030, or p < 0.001."""
    if is_missing(p):
        return missing
    return "p < 0.001" if float(p) < 0.001 else f"p = {float(p):.3f}"


def fmt_ratio(value: object, missing: str = DASH) -> str:
    """A multiple (ROI, ROAS): 2.50×."""
    return missing if is_missing(value) else f"{float(value):,.2f}×"
