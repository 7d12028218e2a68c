"""Values written into SQL text, for the dbt target only (the runtime targets bind every value).

`dbt_literal` is the one helper: strings go through activation.warehouse.literal (single quotes
doubled; NUL refused) and, stricter, text that Jinja would read (`{{`, `{%`, `{#`) is refused,
because the compiled text becomes a dbt model that dbt renders; numbers must be finite; dates and
timestamps are cast from ISO text. Anything else is refused.
"""

from __future__ import annotations

import datetime as dt
import math

from activation.warehouse import UnsafeIdentifier, literal

JINJA_OPENERS = ("{{", "{%", "{#")


class UnsafeLiteral(ValueError):
    """A value that cannot be written into a dbt model's SQL text."""


def dbt_literal(value: object) -> str:
    """`value` as SQL text for a dbt model, or UnsafeLiteral saying why it cannot be."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UnsafeLiteral(f"{value!r} is not a finite number")
        return repr(value)
    if isinstance(value, dt.datetime):
        return f"cast('{value.isoformat(sep=' ')}' as timestamp)"
    if isinstance(value, dt.date):
        return f"cast('{value.isoformat()}' as date)"
    if isinstance(value, str):
        opener = next((o for o in JINJA_OPENERS if o in value), None)
        if opener:
            raise UnsafeLiteral(
                f"text containing {opener!r} cannot go into a dbt model (dbt would read it as Jinja)"
            )
        try:
            return literal(value)
        except UnsafeIdentifier as exc:
            raise UnsafeLiteral(str(exc)) from exc
    raise UnsafeLiteral(f"cannot write {type(value).__name__} {value!r} as SQL")
