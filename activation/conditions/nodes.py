"""The condition AST: small frozen dataclasses, one per condition kind, built by `parse_condition`.

Values are already checked for shape (a whole number where days are expected, a list of two for
`between`, ...); names (attributes, tags, scores, ...) and types are checked against the Catalog
when compiling, because the catalog decides what is addressable. Every node carries its `Loc`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Union

from .errors import Loc

Scalar = Union[str, int, float, bool, dt.date, dt.datetime]  # noqa: UP007 (a runtime alias)

# Operators, grouped by what their value is.
SCALAR_OPS = ("eq", "ne", "gt", "gte", "lt", "lte")
LIST_OPS = ("in", "not_in")
DAY_OPS = ("within_days", "before_days", "max_days_ago")
SHARE_OPS = ("top_share", "bottom_share")
OPERATORS = (*SCALAR_OPS, *LIST_OPS, "between", "is_null", *DAY_OPS, *SHARE_OPS)


@dataclass(frozen=True)
class VarRef:
    """`{var: name}` in place of a number: the dbt var `name` (its default from dbt_project.yml
    type-checks the comparison; the dbt target writes `{{ var('name') }}`, so `--vars` tunes it)."""

    name: str
    loc: Loc


@dataclass(frozen=True)
class Comparison:
    """`op` applied to a value: a scalar, a tuple (in, not_in, between), a bool (is_null), a
    whole number of days (within_days, before_days) or a share in (0, 1) (top/bottom_share)."""

    op: str
    value: object
    loc: Loc


@dataclass(frozen=True)
class All:
    items: tuple[Condition, ...]
    loc: Loc


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Condition, ...]
    loc: Loc


@dataclass(frozen=True)
class Not:
    item: Condition
    loc: Loc


@dataclass(frozen=True)
class Tag:
    """Has any of these tags on the as-of date (marts.customer_tags)."""

    names: tuple[str, ...]
    loc: Loc


@dataclass(frozen=True)
class LifecycleStage:
    cmp: Comparison
    loc: Loc


@dataclass(frozen=True)
class DaysInStage:
    cmp: Comparison
    loc: Loc


@dataclass(frozen=True)
class RfmSegment:
    cmp: Comparison
    loc: Loc


@dataclass(frozen=True)
class Rfm:
    """An RFM value or score of marts.customer_rfm (r_score, monetary, ...)."""

    name: str
    cmp: Comparison
    loc: Loc


@dataclass(frozen=True)
class Attribute:
    """A column: of dim_customers at the top level, of the event or order inside their `where`.
    `among`: for top_share / bottom_share, rank only the customers meeting this condition."""

    name: str
    cmp: Comparison
    loc: Loc
    among: Condition | None = None


@dataclass(frozen=True)
class Score:
    """A predictive score of ml.customer_scores; a customer without a score never matches."""

    name: str
    cmp: Comparison
    loc: Loc


@dataclass(frozen=True)
class Consent:
    channel: str
    loc: Loc


@dataclass(frozen=True)
class Audience:
    name: str
    loc: Loc


@dataclass(frozen=True)
class Window:
    """within_days N | before_days N | between (date, date) | since 'entry' (needs an anchor)."""

    kind: str
    value: object
    loc: Loc


@dataclass(frozen=True)
class Event:
    types: tuple[str, ...]
    window: Window | None
    count: Comparison | None
    where: Condition | None
    not_followed_by: str | None
    loc: Loc


@dataclass(frozen=True)
class Order:
    window: Window | None
    count: Comparison | None
    sum: Comparison | None
    where: Condition | None
    loc: Loc
    share: Comparison | None = None  # of the orders in the window, the share matching `where`


@dataclass(frozen=True)
class Message:
    """A campaign message was sent / opened / clicked / unsubscribed from (flag True), or not."""

    action: str
    flag: bool
    campaigns: tuple[str, ...]
    channel: str | None
    window: Window | None
    loc: Loc


Condition = Union[  # noqa: UP007 (a runtime alias)
    All,
    AnyOf,
    Not,
    Tag,
    LifecycleStage,
    DaysInStage,
    RfmSegment,
    Rfm,
    Attribute,
    Score,
    Consent,
    Audience,
    Event,
    Order,
    Message,
]
