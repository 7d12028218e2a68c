"""ConditionError and where it points: every error names the source file and the path inside it.

`Loc(source, path)` travels with each AST node, so a problem found while compiling (an unknown
attribute, an operator the column's type does not allow) names the same place as one found while
parsing, e.g. `config/audiences/x.yml: where.all[2].event.within_days: must be ...`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


class ConditionError(ValueError):
    """A condition that cannot be used: the message names the file, the path and what to do."""

    def __init__(self, source: str, path: str, message: str):
        self.source = source
        self.path = path
        self.reason = message
        super().__init__(f"{source}: {path}: {message}")


@dataclass(frozen=True)
class Loc:
    """Where a node came from: the file (or other source) and the path inside it."""

    source: str
    path: str

    def key(self, name: str) -> Loc:
        """The location of mapping key `name` below this one."""
        return Loc(self.source, f"{self.path}.{name}" if self.path else name)

    def index(self, i: int) -> Loc:
        """The location of list item `i` below this one."""
        return Loc(self.source, f"{self.path}[{i}]")

    def error(self, message: str) -> ConditionError:
        return ConditionError(self.source, self.path or "(top)", message)


def known(names: Iterable[str]) -> str:
    """`a, b, c` sorted, for 'known: ...' hints."""
    return ", ".join(sorted(names))


def unknown_name(what: str, name: object, names: Iterable[str]) -> str:
    """'unknown attribute 'contry' (did you mean 'country'? known: ...)'."""
    pool = sorted(names)
    close = _closest(name, pool) if isinstance(name, str) else []
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown {what} {name!r} ({hint}known: {', '.join(pool)})"


def _closest(name: str, pool: list[str]) -> list[str]:
    """A name one is the start of the other (recency -> recency_days, equals -> eq), else the
    most similar by difflib."""
    lowered = name.lower()
    prefixed = [
        p
        for p in pool
        if len(min(p, lowered, key=len)) >= 2
        and (p.lower().startswith(lowered) or lowered.startswith(p.lower()))
    ]
    if prefixed:
        return [max(prefixed, key=lambda p: difflib.SequenceMatcher(None, lowered, p.lower()).ratio())]
    return difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
