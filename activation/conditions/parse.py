"""parse_condition: a YAML value -> a validated, immutable condition AST.

Parsing checks the shape of everything (one key per condition, known kinds and operators, whole
numbers of days, lists where lists belong, dates that are dates); the Catalog checks names and
types when compiling. Every error is a ConditionError naming the source and the path inside it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from .errors import ConditionError, Loc, known, unknown_name
from .nodes import (
    DAY_OPS,
    LIST_OPS,
    OPERATORS,
    SCALAR_OPS,
    SHARE_OPS,
    All,
    AnyOf,
    Attribute,
    Audience,
    Comparison,
    Condition,
    Consent,
    DaysInStage,
    Event,
    LifecycleStage,
    Message,
    Not,
    Order,
    Rfm,
    RfmSegment,
    Score,
    Tag,
    VarRef,
    Window,
)

WINDOW_KEYS = ("within_days", "before_days", "between", "since")
COUNT_OPS = (*SCALAR_OPS, *LIST_OPS, "between")
SUM_OPS = (*SCALAR_OPS, "between")
MESSAGE_ACTIONS = ("sent", "opened", "clicked", "unsubscribed")
FOLLOW_UPS = ("order", "any_order")  # a completed order; an order of any status


def parse_condition(raw: Any, source: str, path: str = "where") -> Condition:
    """The validated AST of `raw` (the YAML value of a condition), or a ConditionError naming
    `source` and the path inside it (`path` is where `raw` sits in the file, e.g. `where`)."""
    return _condition(raw, Loc(source, path))


# --- helpers ----------------------------------------------------------------------------------------


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _single(raw: Any, loc: Loc, what: str, choices: tuple[str, ...]) -> tuple[str, Any]:
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise loc.error(
            f"{what} must be a mapping with exactly one key, one of: {known(choices)} (got {_show(raw)})"
        )
    ((key, value),) = raw.items()
    if key not in choices:
        raise loc.error(unknown_name(what, key, choices))
    return key, value


def _mapping(raw: Any, loc: Loc, what: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise loc.error(f"{what} must be a mapping with keys from: {known(allowed)} (got {_show(raw)})")
    for key in raw:
        if key not in allowed:
            raise loc.key(str(key)).error(unknown_name(f"key of {what}", key, allowed))
    return raw


def _name(raw: Any, loc: Loc, what: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise loc.error(f"{what} must be a non-empty name (got {_show(raw)})")
    return raw.strip()


def _names(raw: Any, loc: Loc, what: str) -> tuple[str, ...]:
    """One name or a non-empty list of names."""
    if isinstance(raw, list):
        if not raw:
            raise loc.error(f"{what} must be a name or a non-empty list of names (got [])")
        return tuple(_name(v, loc.index(i), what) for i, v in enumerate(raw))
    return (_name(raw, loc, what),)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _scalar(value: Any, loc: Loc) -> Any:
    if isinstance(value, str | bool | int | float | dt.date):
        if isinstance(value, float) and value != value:  # NaN
            raise loc.error("must be a number, text, true/false or a date (got NaN)")
        return value
    raise loc.error(f"must be one value (a number, text, true/false or a date), got {_show(value)}")


def _var(value: Any, loc: Loc) -> VarRef | None:
    """`{var: name}`: a dbt var in place of a number (checked against its default when compiling)."""
    if not isinstance(value, Mapping) or "var" not in value:
        return None
    if len(value) != 1:
        raise loc.error(f"a var reference is {{var: name}} and nothing else (got {_show(value)})")
    name = value["var"]
    if not isinstance(name, str) or not name.strip():
        raise loc.key("var").error(f"must be the name of a dbt var (got {_show(name)})")
    return VarRef(name.strip(), loc)


def _days(value: Any, loc: Loc) -> int | VarRef:
    ref = _var(value, loc)
    if ref is not None:
        return ref
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise loc.error(f"must be a whole number of days >= 1 (got {_show(value)})")
    return value


def _date(value: Any, loc: Loc) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise loc.error(f"must be a date like 2026-01-31 (got {_show(value)})")


# --- comparisons ------------------------------------------------------------------------------------


def _op_value(op: str, value: Any, loc: Loc) -> object:
    ref = _var(value, loc) if op in (*SCALAR_OPS, *DAY_OPS, *SHARE_OPS) else None
    if ref is not None:
        return ref
    if op in SCALAR_OPS:
        if value is None:
            raise loc.error(f"{op} needs a value; to test for a missing value use is_null: true")
        return _scalar(value, loc)
    if op in LIST_OPS:
        if not isinstance(value, list) or not value:
            raise loc.error(f"{op} needs a non-empty list of values (got {_show(value)})")
        return tuple(_scalar(v, loc.index(i)) for i, v in enumerate(value))
    if op == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise loc.error(f"between needs a list of two values [low, high] (got {_show(value)})")
        low, high = (_scalar(v, loc.index(i)) for i, v in enumerate(value))
        try:
            if high < low:
                raise loc.error(f"between needs low <= high (got {_show(value)})")
        except TypeError:
            raise loc.error(f"between needs two values of the same kind (got {_show(value)})") from None
        return (low, high)
    if op == "is_null":
        if not isinstance(value, bool):
            raise loc.error(f"is_null takes true or false (got {_show(value)})")
        return value
    if op in DAY_OPS:
        return _days(value, loc)
    if op in SHARE_OPS:
        if not _is_number(value) or not 0 < value < 1:
            raise loc.error(f"{op} must be a share between 0 and 1, e.g. 0.05 for 5% (got {_show(value)})")
        return float(value)
    raise AssertionError(op)


def _comparison(
    raw: Any, loc: Loc, ops: tuple[str, ...] = OPERATORS, extra: tuple[str, ...] = ()
) -> Comparison:
    """A mapping holding exactly one operator of `ops` (and the `extra` keys, handled by the caller)."""
    if not isinstance(raw, Mapping):
        raise loc.error(f"must be a mapping with one operator, one of: {', '.join(ops)} (got {_show(raw)})")
    present = [k for k in raw if k not in extra]
    for key in present:
        if key not in ops:
            if key in OPERATORS:
                raise loc.key(key).error(f"operator {key} does not apply here (use one of: {', '.join(ops)})")
            raise loc.key(str(key)).error(unknown_name("operator", key, (*ops, *extra)))
    if len(present) != 1:
        raise loc.error(
            f"needs exactly one operator, one of: {', '.join(ops)} (got {', '.join(present) or 'none'})"
        )
    op = present[0]
    return Comparison(op, _op_value(op, raw[op], loc.key(op)), loc)


def _whole(op: str, value: object, loc: Loc) -> None:
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise loc.key(op).error(f"a count is a whole number >= 0 (got {_show(v)})")


def _count(raw: Any, loc: Loc) -> Comparison:
    cmp = _comparison(raw, loc, COUNT_OPS)
    _whole(cmp.op, cmp.value, loc)
    return cmp


def _sum(raw: Any, loc: Loc) -> Comparison:
    cmp = _comparison(raw, loc, SUM_OPS)
    values = cmp.value if isinstance(cmp.value, tuple) else (cmp.value,)
    for v in values:
        if not _is_number(v) and not isinstance(v, VarRef):
            raise loc.key(cmp.op).error(f"a sum is compared with a number (got {_show(v)})")
    return cmp


def _share(raw: Any, loc: Loc) -> Comparison:
    cmp = _comparison(raw, loc, SUM_OPS)
    values = cmp.value if isinstance(cmp.value, tuple) else (cmp.value,)
    for v in values:
        if not isinstance(v, VarRef) and (not _is_number(v) or not 0 <= v <= 1):
            raise loc.key(cmp.op).error(
                f"a share is a number from 0 to 1, e.g. 0.5 for half (got {_show(v)})"
            )
    return cmp


def _shorthand(raw: Any, loc: Loc) -> Comparison:
    """`lifecycle_stage: at_risk` means eq; a mapping is a comparison."""
    if isinstance(raw, str):
        return Comparison("eq", _name(raw, loc, "value"), loc)
    return _comparison(raw, loc)


# --- condition kinds --------------------------------------------------------------------------------


def _items(raw: Any, loc: Loc, kind: str) -> tuple[Condition, ...]:
    if not isinstance(raw, list) or not raw:
        raise loc.error(f"{kind} needs a non-empty list of conditions (got {_show(raw)})")
    return tuple(_condition(item, loc.index(i)) for i, item in enumerate(raw))


def _all(raw: Any, loc: Loc) -> Condition:
    return All(_items(raw, loc, "all"), loc)


def _any(raw: Any, loc: Loc) -> Condition:
    return AnyOf(_items(raw, loc, "any"), loc)


def _not(raw: Any, loc: Loc) -> Condition:
    return Not(_condition(raw, loc), loc)


def _tag(raw: Any, loc: Loc) -> Condition:
    if isinstance(raw, Mapping):
        if len(raw) == 1 and "eq" in raw:
            return Tag((_name(raw["eq"], loc.key("eq"), "tag"),), loc)
        if len(raw) == 1 and "in" in raw:
            return Tag(_names(raw["in"], loc.key("in"), "tag"), loc)
        ops = ", ".join(str(k) for k in raw)
        raise loc.error(
            f"a tag is had or not: write `tag: vip` or `tag: {{in: [vip, ...]}}` (and `not:` for "
            f"the opposite); {ops} does not apply to tags"
        )
    return Tag((_name(raw, loc, "tag"),), loc)


def _lifecycle_stage(raw: Any, loc: Loc) -> Condition:
    return LifecycleStage(_shorthand(raw, loc), loc)


def _days_in_stage(raw: Any, loc: Loc) -> Condition:
    return DaysInStage(_comparison(raw, loc), loc)


def _rfm_segment(raw: Any, loc: Loc) -> Condition:
    return RfmSegment(_shorthand(raw, loc), loc)


def _named_comparison(raw: Any, loc: Loc, what: str, extra: tuple[str, ...] = ()) -> tuple[str, Comparison]:
    if not isinstance(raw, Mapping) or "name" not in raw:
        raise loc.error(
            f"{what} needs a name and one operator, e.g. {{name: ..., gte: 1}} (got {_show(raw)})"
        )
    name = _name(raw["name"], loc.key("name"), f"{what} name")
    return name, _comparison(raw, loc, extra=("name", *extra))


def _rfm(raw: Any, loc: Loc) -> Condition:
    return Rfm(*_named_comparison(raw, loc, "rfm"), loc)


def _attribute(raw: Any, loc: Loc) -> Condition:
    name, cmp = _named_comparison(raw, loc, "attribute", extra=("among",))
    among = None
    if "among" in raw:
        if cmp.op not in SHARE_OPS:
            raise loc.key("among").error(
                f"among applies to top_share and bottom_share only (it says whom to rank; got {cmp.op})"
            )
        among = _condition(raw["among"], loc.key("among"))
    return Attribute(name, cmp, loc, among)


def _score(raw: Any, loc: Loc) -> Condition:
    return Score(*_named_comparison(raw, loc, "score"), loc)


def _consent(raw: Any, loc: Loc) -> Condition:
    if isinstance(raw, Mapping):
        raw = _mapping(raw, loc, "consent", ("channel",)).get("channel")
        loc = loc.key("channel")
    return Consent(_name(raw, loc, "consent channel"), loc)


def _audience(raw: Any, loc: Loc) -> Condition:
    return Audience(_name(raw, loc, "audience"), loc)


def _window(raw: Mapping[str, Any], loc: Loc) -> Window | None:
    present = [k for k in WINDOW_KEYS if k in raw]
    if len(present) > 1:
        raise loc.error(f"one window at most, got {', '.join(present)}")
    if not present:
        return None
    kind = present[0]
    at = loc.key(kind)
    value = raw[kind]
    if kind in DAY_OPS:
        return Window(kind, _days(value, at), at)
    if kind == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise at.error(f"between needs two dates [first day, last day] (got {_show(value)})")
        first, last = (_date(v, at.index(i)) for i, v in enumerate(value))
        if last < first:
            raise at.error(f"between needs the first day on or before the last (got {_show(value)})")
        return Window(kind, (first, last), at)
    if value != "entry":
        raise at.error(f"since takes `entry` (the journey entry time; got {_show(value)})")
    return Window(kind, value, at)


def _where(raw: Any, loc: Loc) -> Condition:
    """A `where` of an event or order: all / any / not over `attribute:` of its own fields."""
    kind, value = _single(raw, loc, "where condition", ("all", "any", "not", "attribute"))
    at = loc.key(kind)
    if kind == "attribute":
        return Attribute(*_named_comparison(value, at, "attribute"), at)
    if kind == "not":
        return Not(_where(value, at), at)
    if not isinstance(value, list) or not value:
        raise at.error(f"{kind} needs a non-empty list of conditions (got {_show(value)})")
    items = tuple(_where(item, at.index(i)) for i, item in enumerate(value))
    return All(items, at) if kind == "all" else AnyOf(items, at)


def _event(raw: Any, loc: Loc) -> Condition:
    raw = _mapping(raw, loc, "event", ("type", "count", "where", "not_followed_by", *WINDOW_KEYS))
    if "type" not in raw:
        raise loc.error("event needs a type (one event type or a list), e.g. {type: product_view}")
    follow = None
    if "not_followed_by" in raw:
        follow = raw["not_followed_by"]
        if follow not in FOLLOW_UPS:
            raise loc.key("not_followed_by").error(
                f"not_followed_by takes: {', '.join(FOLLOW_UPS)} (got {_show(follow)})"
            )
    return Event(
        types=_names(raw["type"], loc.key("type"), "event type"),
        window=_window(raw, loc),
        count=_count(raw["count"], loc.key("count")) if "count" in raw else None,
        where=_where(raw["where"], loc.key("where")) if "where" in raw else None,
        not_followed_by=follow,
        loc=loc,
    )


def _order(raw: Any, loc: Loc) -> Condition:
    raw = _mapping(raw, loc, "order", ("count", "sum", "share", "where", *WINDOW_KEYS))
    if "share" in raw and ("count" in raw or "sum" in raw):
        raise loc.key("share").error("share goes alone: write count or sum in another order condition")
    if "share" in raw and "where" not in raw:
        raise loc.key("share").error(
            "share is the share of the orders matching `where`: add a where, e.g. "
            "{attribute: {name: used_coupon, eq: true}}"
        )
    return Order(
        window=_window(raw, loc),
        count=_count(raw["count"], loc.key("count")) if "count" in raw else None,
        sum=_sum(raw["sum"], loc.key("sum")) if "sum" in raw else None,
        where=_where(raw["where"], loc.key("where")) if "where" in raw else None,
        loc=loc,
        share=_share(raw["share"], loc.key("share")) if "share" in raw else None,
    )


def _message(raw: Any, loc: Loc) -> Condition:
    raw = _mapping(raw, loc, "message", ("campaign", "channel", *MESSAGE_ACTIONS, *WINDOW_KEYS))
    actions = [a for a in MESSAGE_ACTIONS if a in raw]
    if len(actions) != 1:
        raise loc.error(
            f"message needs exactly one of {', '.join(MESSAGE_ACTIONS)} with true or false "
            f"(got {', '.join(actions) or 'none'})"
        )
    action = actions[0]
    flag = raw[action]
    if not isinstance(flag, bool):
        raise loc.key(action).error(f"takes true or false (got {_show(flag)})")
    return Message(
        action=action,
        flag=flag,
        campaigns=_names(raw["campaign"], loc.key("campaign"), "campaign") if "campaign" in raw else (),
        channel=_name(raw["channel"], loc.key("channel"), "channel") if "channel" in raw else None,
        window=_window(raw, loc),
        loc=loc,
    )


KINDS: dict[str, Callable[[Any, Loc], Condition]] = {
    "all": _all,
    "any": _any,
    "not": _not,
    "tag": _tag,
    "lifecycle_stage": _lifecycle_stage,
    "days_in_stage": _days_in_stage,
    "rfm_segment": _rfm_segment,
    "rfm": _rfm,
    "attribute": _attribute,
    "score": _score,
    "consent": _consent,
    "audience": _audience,
    "event": _event,
    "order": _order,
    "message": _message,
}


def _condition(raw: Any, loc: Loc) -> Condition:
    kind, value = _single(raw, loc, "condition", tuple(KINDS))
    return KINDS[kind](value, loc.key(kind))


__all__ = ["ConditionError", "parse_condition"]
