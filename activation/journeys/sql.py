"""Statements built from compiled conditions: positional parameters, bound in text order."""

from __future__ import annotations

from typing import Any


class Sql:
    """Collects the parameters of a statement while its text is written: `bind` a value, `cond` a
    compiled condition (its SQL and parameters), each returning the text to put in its place."""

    def __init__(self) -> None:
        self.params: list[Any] = []

    def bind(self, value: Any) -> str:
        self.params.append(value)
        return "?"

    def cond(self, fragment: tuple[str, list]) -> str:
        sql, params = fragment
        self.params.extend(params)
        return f"({sql})"
