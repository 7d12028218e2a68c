"""compile_condition: a condition AST -> a SQL boolean expression over the customer row `c`.

    select c.customer_id from <customers> as c where <sql>

Every leaf is an `exists (...)` (or a count / sum compared with a number) over one relation of
the Catalog, correlated on `c.customer_id`, so it is never NULL and all / any / not combine with
plain two-valued logic. Targets:
- "dbt": relations as `{{ ref() }}` / `{{ source() }}`, the as-of date and cutoff as the project's
  macros, windows through `dbt.dateadd`, values as literals through `dbt_literal`; no parameters.
- "duckdb" / "postgres": relations as `schema.table`, every value (and `now`, the window bounds,
  the as-of date) a bound parameter (`?` / `%s`), returned in order.
Windows end at `now` (exclusive) and reach back whole days: within_days N is
[now - N days, now), before_days N is before now - N days, between [d1, d2] is the days d1..d2.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .catalog import (
    BOOLEAN,
    EVENT_FIELD_ALIASES,
    EXCLUDED_ATTRIBUTES,
    INTEGER,
    NUMBER,
    TEXT,
    TIMESTAMP,
    Catalog,
    Column,
    Relation,
    safe_identifier,
)
from .errors import ConditionError, Loc, unknown_name
from .literals import UnsafeLiteral, dbt_literal
from .nodes import (
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

TARGETS = ("dbt", "duckdb", "postgres")
_PLACEHOLDER = {"duckdb": "?", "postgres": "%s"}
_MARK = re.compile("\x00(\\d+)\x00")
_OPS_BY_TYPE = {
    TEXT: ("eq", "ne", "in", "not_in", "is_null"),
    INTEGER: ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between", "is_null", *SHARE_OPS),
    NUMBER: ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between", "is_null", *SHARE_OPS),
    BOOLEAN: ("eq", "ne", "is_null"),
    TIMESTAMP: ("gt", "gte", "lt", "lte", "between", "is_null", "within_days", "before_days", "max_days_ago"),
}
_SQL_OPS = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_COUNT_TYPE = Column("count", INTEGER)
_SUM_TYPE = Column("sum", NUMBER)
_SHARE_TYPE = Column("share", NUMBER)
_HUMAN_EVENTS = {
    "opened": "in ('opened', 'clicked')",
    "clicked": "= 'clicked'",
    "unsubscribed": "= 'unsubscribed'",
}


@dataclass(frozen=True)
class CompileContext:
    """target: dbt, duckdb or postgres. now: the instant windows end at (naive UTC or aware);
    default the end of the as-of day. as_of: the as-of date (runtime targets; the dbt target
    reads the dbt var `as_of`); default the day of `now`, else today (UTC). anchor: a SQL
    expression of a per-row timestamp (a journey's `j.entered_at`) for `since: entry`; it is
    written into the SQL as given, so it comes from code, never from a condition file.
    anchor_floor: a constant the anchor is known never to be below (the earliest entry time of
    the entries a statement reads); `since: entry` windows then also say `>= anchor_floor`, so
    DuckDB prunes the events and orders before it by their zone maps instead of reading the
    whole history (the per-row bound alone is a join condition, applied after the scan).
    vars: the dbt vars a condition may name with `{var: name}` and their defaults (tag rules
    pass dbt_project.yml's); the dbt target writes `{{ var('name') }}`, the runtime targets bind
    the value given here. None: var references are an error."""

    target: str = "duckdb"
    now: dt.datetime | None = None
    as_of: dt.date | None = None
    anchor: str | None = None
    anchor_floor: dt.datetime | None = None
    vars: Mapping[str, object] | None = None

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target {self.target!r} is not one of {', '.join(TARGETS)}")
        if self.target == "dbt" and self.as_of is not None:
            raise ValueError("the dbt target takes the as-of date from the dbt var as_of; do not pass as_of")
        if self.now is not None and self.now.tzinfo is not None:
            utc = self.now.astimezone(dt.UTC).replace(tzinfo=None)
            object.__setattr__(self, "now", utc)

    def instant(self) -> dt.datetime:
        """`now`, else the end of the as-of day (the start of the next day)."""
        if self.now is not None:
            return self.now
        return dt.datetime.combine(self.as_of_date() + dt.timedelta(days=1), dt.time())

    def as_of_date(self) -> dt.date:
        if self.as_of is not None:
            return self.as_of
        if self.now is not None:
            return (self.now - dt.timedelta(microseconds=1)).date()
        return dt.datetime.now(dt.UTC).date()


def compile_condition(cond: Condition, catalog: Catalog, ctx: CompileContext) -> tuple[str, list]:
    """The SQL boolean expression of `cond` over the customer row `c`, and its bound parameters
    (empty for the dbt target). Unknown names and impossible comparisons are ConditionErrors."""
    compiler = _Compiler(catalog, ctx)
    return compiler.finish(compiler.condition(cond))


def compile_last_event_at(cond: Event, catalog: Catalog, ctx: CompileContext) -> tuple[str, list]:
    """SQL of the time of the latest event `cond` selects (type, window, where, not_followed_by)
    for the customer row `c`, NULL when there is none; `count` is ignored. Tag rules use it for
    `since: {last_event: ...}` (when the tag started: the latest cart activity, say)."""
    compiler = _Compiler(catalog, ctx)
    compiler.event_time = ""
    compiler.condition(cond)
    return compiler.finish(compiler.event_time)


def compile_event_filter(cond: Event, catalog: Catalog, ctx: CompileContext, alias: str) -> tuple[str, list]:
    """SQL of `cond`'s type(s) and `where` over one event row `alias` (of the catalog's events
    relation), and its parameters: journeys select the events that trigger an entry or end a wait
    with it (window, count and not_followed_by are not looked at; the journey parser refuses them).
    `alias` comes from code, never from a file."""
    compiler = _Compiler(catalog, ctx)
    return compiler.finish(" and ".join(f"({w})" for w in compiler.event_row(cond, safe_identifier(alias))))


def compile_message_filter(
    cond: Message, catalog: Catalog, ctx: CompileContext, alias: str
) -> tuple[str, str, list]:
    """The relation `cond` reads (fct_messages for `sent`, else fct_message_events), and SQL of its
    action, campaign(s) and channel over one row `alias` of it, with its parameters: lead scoring
    turns each matching row into a scored occurrence (the flag and the window are not looked at;
    its parser refuses `false` and handles the window itself). `alias` comes from code."""
    compiler = _Compiler(catalog, ctx)
    relation, _, where = compiler.message_row(cond, safe_identifier(alias))
    sql, params = compiler.finish(" and ".join(f"({w})" for w in where))
    return relation, sql, params


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time())


class _Compiler:
    def __init__(self, catalog: Catalog, ctx: CompileContext):
        self.catalog = catalog
        self.ctx = ctx
        self.values: list[object] = []
        self._aliases = itertools.count(1)
        self.row = "c"  # the customer row leaves correlate on (another alias inside `among`)
        self.event_time: str | None = None  # set by compile_last_event_at

    # --- plumbing -----------------------------------------------------------------------------------

    def finish(self, sql: str) -> tuple[str, list]:
        if self.ctx.target == "dbt":
            return sql, []
        params: list[object] = []

        def bind(match: re.Match) -> str:
            params.append(self.values[int(match.group(1))])
            return _PLACEHOLDER[self.ctx.target]

        return _MARK.sub(bind, sql), params

    def var_value(self, ref: VarRef) -> object:
        """The default of the dbt var `ref` names (an error naming the file and path if unknown)."""
        known_vars = self.ctx.vars
        if known_vars is None:
            raise ref.loc.error(f"{{var: {ref.name}}}: dbt vars are not available here (only in tag rules)")
        if ref.name not in known_vars:
            raise ref.loc.key("var").error(unknown_name("dbt var", ref.name, known_vars))
        return known_vars[ref.name]

    def var_checked(self, ref: VarRef, ok, what: str) -> VarRef:
        """`ref` if its default passes `ok` (the check a literal in its place would get)."""
        value = self.var_value(ref)
        if not ok(value):
            raise ref.loc.key("var").error(
                f"dbt var {ref.name} is {value!r} in dbt_project.yml, but {what} is needed here"
            )
        return ref

    def bind(self, value: object, loc: Loc) -> str:
        """A value in the SQL: a literal for dbt, else a parameter marker (placed in order by finish)."""
        if isinstance(value, VarRef):
            if self.ctx.target == "dbt":
                return f"{{{{ var('{safe_identifier(value.name)}') }}}}"
            value = self.var_value(value)
        if self.ctx.target == "dbt":
            try:
                return dbt_literal(value)
            except UnsafeLiteral as exc:
                raise loc.error(str(exc)) from None
        self.values.append(value)
        return f"\x00{len(self.values) - 1}\x00"

    def alias(self, prefix: str) -> str:
        return f"{prefix}{next(self._aliases)}"

    def relation(self, rel: Relation) -> str:
        if self.ctx.target == "dbt":
            if rel.ref is not None:
                return f"{{{{ ref('{rel.ref}') }}}}"
            assert rel.source is not None
            return f"{{{{ source('{rel.source[0]}', '{rel.source[1]}') }}}}"
        return f"{rel.schema}.{rel.table}"

    def named(self, key: str) -> str:
        return self.relation(self.catalog.relations[key])

    def now(self, loc: Loc) -> str:
        if self.ctx.target == "dbt" and self.ctx.now is None:
            return "{{ as_of_cutoff() }}"
        return self.bind(self.ctx.instant(), loc)

    def day_count(self, days: int | VarRef) -> tuple[int, str]:
        """A whole number of days >= 1 (a var's default checked), and how dbt writes its negation."""
        if isinstance(days, VarRef):
            self.var_checked(days, _whole_days, "a whole number of days >= 1")
            return int(self.var_value(days)), f"-(var('{safe_identifier(days.name)}') | int)"
        return int(days), str(-int(days))

    def days_back(self, days: int | VarRef, loc: Loc) -> str:
        count, negated = self.day_count(days)
        if self.ctx.target == "dbt" and self.ctx.now is None:
            return f"cast({{{{ dbt.dateadd('day', {negated}, as_of_cutoff()) }}}} as timestamp)"
        return self.bind(self.ctx.instant() - dt.timedelta(days=count), loc)

    def days_before_as_of(self, days: int | VarRef, loc: Loc) -> str:
        """The start of the day `days` whole days before the as-of date."""
        count, negated = self.day_count(days)
        if self.ctx.target == "dbt":
            return f"cast({{{{ dbt.dateadd('day', {negated}, as_of_date()) }}}} as timestamp)"
        return self.bind(_midnight(self.ctx.as_of_date() - dt.timedelta(days=count)), loc)

    def as_of(self, loc: Loc) -> str:
        if self.ctx.target == "dbt":
            return "{{ as_of_date() }}"
        return self.bind(self.ctx.as_of_date(), loc)

    # --- dispatch -----------------------------------------------------------------------------------

    def condition(self, cond: Condition) -> str:
        method = getattr(self, "_" + type(cond).__name__.lower())
        return method(cond)

    def _all(self, cond: All) -> str:
        return "(" + " and ".join(self.condition(c) for c in cond.items) + ")"

    def _anyof(self, cond: AnyOf) -> str:
        return "(" + " or ".join(self.condition(c) for c in cond.items) + ")"

    def _not(self, cond: Not) -> str:
        return f"not ({self.condition(cond.item)})"

    # --- comparisons --------------------------------------------------------------------------------

    def check(self, column: Column, cmp: Comparison, label: str, ops: tuple[str, ...] | None = None) -> None:
        """The operator applies to the column's type (personal columns: is_null only)."""
        allowed = tuple(op for op in _OPS_BY_TYPE[column.type] if ops is None or op in ops)
        if column.personal:
            allowed, why = ("is_null",), "personal data: only is_null, so no address or name is written down"
        else:
            why = f"{column.type}: use one of {', '.join(allowed)}"
        if cmp.op not in allowed:
            raise cmp.loc.key(cmp.op).error(f"{cmp.op} does not apply to {label} ({why})")

    def typed(self, column: Column, value: object, loc: Loc, label: str) -> object:
        """`value` checked against the column's type (and timestamps as dates or datetimes)."""
        if isinstance(value, VarRef):
            if column.type not in (INTEGER, NUMBER):
                raise loc.error(f"{label} is {column.type}: a dbt var stands only for a number here")
            return self.var_checked(value, _is_number, "a number")
        kind = column.type
        ok = (
            (kind == TEXT and isinstance(value, str))
            or (kind in (INTEGER, NUMBER) and isinstance(value, int | float) and not isinstance(value, bool))
            or (kind == BOOLEAN and isinstance(value, bool))
        )
        if kind == TIMESTAMP:
            if isinstance(value, str):
                try:
                    text = value.strip()
                    value = dt.datetime.fromisoformat(text) if len(text) > 10 else dt.date.fromisoformat(text)
                except ValueError:
                    pass
            if isinstance(value, dt.datetime) and value.tzinfo is not None:
                return value.astimezone(dt.UTC).replace(tzinfo=None)  # the warehouse keeps UTC
            if isinstance(value, dt.date):
                return value
            raise loc.error(f"{label} is a timestamp: compare it with a date like 2026-01-31 (got {value!r})")
        if not ok:
            hint = " (quote it in YAML to make it text)" if kind == TEXT else ""
            raise loc.error(f"{label} is {kind}: got {value!r}{hint}")
        return value

    def values_of(self, column: Column, cmp: Comparison, label: str) -> tuple[object, ...]:
        raw = cmp.value if isinstance(cmp.value, tuple) else (cmp.value,)
        many = isinstance(cmp.value, tuple)
        return tuple(
            self.typed(column, v, cmp.loc.key(cmp.op).index(i) if many else cmp.loc.key(cmp.op), label)
            for i, v in enumerate(raw)
        )

    def double_type(self) -> str:
        """The 8-byte float type: the project's `type_double()` macro in dbt models (Spark calls it
        `double`), `double precision` on the runtime targets."""
        return "{{ type_double() }}" if self.ctx.target == "dbt" else "double precision"

    def predicate(self, expr: str, column: Column, cmp: Comparison, label: str) -> str:
        """SQL for `expr <op> value` (may be NULL when expr is NULL: callers wrap it)."""
        op, at = cmp.op, cmp.loc.key(cmp.op)
        if op == "is_null":
            return f"{expr} is null" if cmp.value else f"{expr} is not null"
        if op == "within_days":
            return f"{expr} >= {self.days_back(cmp.value, at)} and {expr} < {self.now(at)}"
        if op == "before_days":
            return f"{expr} < {self.days_back(cmp.value, at)}"
        if op == "max_days_ago":  # at most N whole days before the as-of date (the as-of day is 0)
            return f"{expr} >= {self.days_before_as_of(cmp.value, at)} and {expr} < {self.now(at)}"
        values = self.values_of(column, cmp, label)
        if column.type == TIMESTAMP:
            return self.time_predicate(expr, op, values, at)
        if op in _SQL_OPS:
            return f"{expr} {_SQL_OPS[op]} {self.bind(values[0], at)}"
        if op in ("in", "not_in"):
            listed = ", ".join(self.bind(v, at.index(i)) for i, v in enumerate(values))
            return f"{expr} {'in' if op == 'in' else 'not in'} ({listed})"
        if op == "between":
            return f"{expr} between {self.bind(values[0], at)} and {self.bind(values[1], at)}"
        raise AssertionError(op)

    def time_predicate(self, expr: str, op: str, values: tuple, at: Loc) -> str:
        """A date means the whole day: gte D from its start, lte D to its end, gt D after it."""

        def start(v: dt.date) -> dt.datetime:
            return v if isinstance(v, dt.datetime) else _midnight(v)

        def after(v: dt.date) -> dt.datetime:
            return v if isinstance(v, dt.datetime) else _midnight(v + dt.timedelta(days=1))

        def upper(v: dt.date) -> str:  # lte / the high end of between
            return "<=" if isinstance(v, dt.datetime) else "<"

        if op == "gte":
            return f"{expr} >= {self.bind(start(values[0]), at)}"
        if op == "lt":
            return f"{expr} < {self.bind(start(values[0]), at)}"
        if op == "gt":
            strict = ">" if isinstance(values[0], dt.datetime) else ">="
            return f"{expr} {strict} {self.bind(after(values[0]), at)}"
        if op == "lte":
            return f"{expr} {upper(values[0])} {self.bind(after(values[0]), at)}"
        if op == "between":
            low, high = values
            return (
                f"{expr} >= {self.bind(start(low), at)} and {expr} {upper(high)} {self.bind(after(high), at)}"
            )
        raise AssertionError(op)

    def known_values(self, cmp: Comparison, allowed: tuple[str, ...], what: str) -> None:
        """Every value of a comparison on a closed list (stages, segments, statuses) is on it."""
        if cmp.op == "is_null":
            return
        raw = cmp.value if isinstance(cmp.value, tuple) else (cmp.value,)
        for i, v in enumerate(raw):
            if v not in allowed:
                at = cmp.loc.key(cmp.op).index(i) if isinstance(cmp.value, tuple) else cmp.loc.key(cmp.op)
                raise at.error(unknown_name(what, v, allowed))

    def row_leaf(
        self, relation: str, column: Column, cmp: Comparison, label: str, among: Condition | None = None
    ) -> str:
        """exists a row of `relation` (customer_id, column) for c whose column satisfies cmp.
        A share ranks the rows having a value (and, with `among`, meeting that condition)."""
        a = self.alias("r")
        if cmp.op in SHARE_OPS:
            order = "desc" if cmp.op == "top_share" else "asc"
            v = self.alias("v")
            subset = ""
            if among is not None:
                outer, self.row = self.row, v
                try:
                    subset = f" and {self.condition(among)}"
                finally:
                    self.row = outer
            ranked = (
                f"select {v}.customer_id, percent_rank() over (order by {v}.{column.name} {order}) as share_rank "
                f"from {relation} {v} where {v}.{column.name} is not null{subset}"
            )
            if isinstance(cmp.value, VarRef):
                self.var_checked(cmp.value, _is_share, "a share between 0 and 1")
            share = self.bind(cmp.value, cmp.loc.key(cmp.op))
            return (
                f"exists (select 1 from ({ranked}) {a} "
                f"where {a}.customer_id = {self.row}.customer_id and {a}.share_rank < {share})"
            )
        pred = self.predicate(f"{a}.{column.name}", column, cmp, label)
        return (
            f"exists (select 1 from {relation} {a} where {a}.customer_id = {self.row}.customer_id and {pred})"
        )

    def lookup(self, names: Mapping[str, Column], name: str, loc: Loc, what: str) -> Column:
        if name not in names:
            raise loc.key("name").error(unknown_name(what, name, names))
        return names[name]

    # --- customer conditions ------------------------------------------------------------------------

    def _tag(self, cond: Tag) -> str:
        for i, name in enumerate(cond.names):
            if name not in self.catalog.tags:
                raise (cond.loc.index(i) if len(cond.names) > 1 else cond.loc).error(
                    unknown_name("tag", name, self.catalog.tags)
                )
        a = self.alias("t")
        listed = ", ".join(self.bind(n, cond.loc) for n in cond.names)
        return f"exists (select 1 from {self.named('tags')} {a} where {a}.customer_id = {self.row}.customer_id and {a}.tag in ({listed}))"

    def _lifecyclestage(self, cond: LifecycleStage) -> str:
        column = Column("lifecycle_stage", TEXT)
        self.check(column, cond.cmp, "lifecycle_stage", ("eq", "ne", "in", "not_in"))
        self.known_values(cond.cmp, self.catalog.lifecycle_stages, "lifecycle stage")
        return self.row_leaf(self.named("lifecycle"), column, cond.cmp, "lifecycle_stage")

    def _daysinstage(self, cond: DaysInStage) -> str:
        column = Column("days_in_stage", INTEGER)
        self.check(column, cond.cmp, "days_in_stage")
        return self.row_leaf(self.named("lifecycle"), column, cond.cmp, "days_in_stage")

    def _rfmsegment(self, cond: RfmSegment) -> str:
        column = Column("rfm_segment", TEXT)
        self.check(column, cond.cmp, "rfm_segment", ("eq", "ne", "in", "not_in"))
        self.known_values(cond.cmp, self.catalog.rfm_segments, "RFM segment")
        return self.row_leaf(self.named("rfm"), column, cond.cmp, "rfm_segment")

    def _rfm(self, cond: Rfm) -> str:
        column = self.lookup(self.catalog.rfm, cond.name, cond.loc, "rfm value")
        self.check(column, cond.cmp, f"rfm {cond.name}")
        return self.row_leaf(self.named("rfm"), column, cond.cmp, f"rfm {cond.name}")

    def _attribute(self, cond: Attribute) -> str:
        if cond.name in EXCLUDED_ATTRIBUTES:
            raise cond.loc.key("name").error(
                f"{cond.name} is not addressable ({EXCLUDED_ATTRIBUTES[cond.name]})"
            )
        column = self.lookup(self.catalog.attributes, cond.name, cond.loc, "attribute")
        self.check(column, cond.cmp, cond.name)
        return self.row_leaf(self.named("customers"), column, cond.cmp, cond.name, cond.among)

    def _score(self, cond: Score) -> str:
        column = self.lookup(self.catalog.scores, cond.name, cond.loc, "score")
        self.check(column, cond.cmp, f"score {cond.name}")
        # The latest score of each customer on or before the as-of date.
        latest = (
            f"(select customer_id, {column.name} from (select customer_id, {column.name}, row_number() over "
            f"(partition by customer_id order by as_of_date desc, scored_at desc) as nth "
            f"from {self.named('scores')} where as_of_date <= {self.as_of(cond.loc)}) {self.alias('s')} "
            f"where nth = 1)"
        )
        return self.row_leaf(f"{latest}", column, cond.cmp, f"score {cond.name}")

    def _consent(self, cond: Consent) -> str:
        columns = self.catalog.consent_columns
        if cond.channel not in columns:
            raise cond.loc.error(unknown_name("consent channel", cond.channel, columns))
        a = self.alias("d")
        column = safe_identifier(columns[cond.channel])
        return f"exists (select 1 from {self.named('customers')} {a} where {a}.customer_id = {self.row}.customer_id and {a}.{column})"

    def _audience(self, cond: Audience) -> str:
        if cond.name not in self.catalog.audiences:
            if not self.catalog.audiences:
                raise cond.loc.error(
                    f"unknown audience {cond.name!r} (no audiences are known to this catalog)"
                )
            raise cond.loc.error(unknown_name("audience", cond.name, self.catalog.audiences))
        a = self.alias("m")
        rel = self.relation(self.catalog.audiences[cond.name])
        return f"exists (select 1 from {rel} {a} where {a}.customer_id = {self.row}.customer_id)"

    # --- windows, events, orders, messages ----------------------------------------------------------

    def window(self, window: Window | None, expr: str, loc: Loc) -> list[str]:
        if window is None:
            return [f"{expr} < {self.now(loc)}"]
        at = window.loc
        if window.kind == "within_days":
            return [f"{expr} >= {self.days_back(window.value, at)}", f"{expr} < {self.now(at)}"]
        if window.kind == "before_days":
            return [f"{expr} < {self.days_back(window.value, at)}"]
        if window.kind == "between":
            first, last = window.value
            return [
                f"{expr} >= {self.bind(_midnight(first), at)}",
                f"{expr} < {self.bind(_midnight(last + dt.timedelta(days=1)), at)}",
                f"{expr} < {self.now(at)}",
            ]
        if self.ctx.anchor is None:
            raise at.error("since: entry needs an entry time; it is only available in journey conditions")
        bounds = [f"{expr} >= ({self.ctx.anchor})", f"{expr} < {self.now(at)}"]
        if self.ctx.anchor_floor is not None:
            bounds.append(f"{expr} >= {self.bind(self.ctx.anchor_floor, at)}")
        return bounds

    def count(self, source: str, where: list[str], cmp: Comparison | None) -> str:
        """`exists` for at least one (the default), else `(select count(*) ...) <op> value`."""
        body = f"from {source} where " + " and ".join(where)
        if cmp is None or (cmp.op == "gte" and cmp.value == 1) or (cmp.op == "gt" and cmp.value == 0):
            return f"exists (select 1 {body})"
        return self.predicate(f"(select count(*) {body})", _COUNT_TYPE, cmp, "count")

    def field_where(self, cond: Condition, fields: Mapping[str, Column], expr_of, check_value) -> str:
        """The `where` of an event or order: every comparison is false (never NULL) on a missing value."""
        if isinstance(cond, All | AnyOf):
            joiner = " and " if isinstance(cond, All) else " or "
            return (
                "(" + joiner.join(self.field_where(c, fields, expr_of, check_value) for c in cond.items) + ")"
            )
        if isinstance(cond, Not):
            return f"not ({self.field_where(cond.item, fields, expr_of, check_value)})"
        assert isinstance(cond, Attribute)
        name = (
            EVENT_FIELD_ALIASES.get(cond.name, cond.name)
            if fields is self.catalog.event_fields
            else cond.name
        )
        if name not in fields:
            raise cond.loc.key("name").error(unknown_name("field", cond.name, fields))
        column = fields[name]
        self.check(
            column, cond.cmp, name, tuple(op for op in _OPS_BY_TYPE[column.type] if op not in SHARE_OPS)
        )
        check_value(name, cond.cmp)
        return f"coalesce({self.predicate(expr_of(name), column, cond.cmp, name)}, false)"

    def _check_event_types(self, cond: Event) -> None:
        for i, name in enumerate(cond.types):
            if name not in self.catalog.event_types:
                at = cond.loc.key("type").index(i) if len(cond.types) > 1 else cond.loc.key("type")
                raise at.error(
                    unknown_name("event type", name, self.catalog.event_types)
                    + "; a shop's own event types are added to the catalog (Catalog.with_event_types)"
                )

    def event_row(self, cond: Event, e: str) -> list[str]:
        """The predicates on one event row `e` of `cond`: its type(s) and its `where`."""
        self._check_event_types(cond)

        def check_value(name: str, cmp: Comparison) -> None:
            if name == "event_type":
                self.known_values(cmp, self.catalog.event_types, "event type")

        def expr_of(name: str) -> str:
            if name == "category":
                p = self.alias("p")
                return f"(select {p}.category from {self.named('products')} {p} where {p}.product_id = {e}.product_id)"
            return f"{e}.{safe_identifier(name)}"

        types = ", ".join(self.bind(t, cond.loc.key("type")) for t in cond.types)
        where = [f"{e}.event_type in ({types})"]
        if cond.where is not None:
            where.append(self.field_where(cond.where, self.catalog.event_fields, expr_of, check_value))
        return where

    def _event(self, cond: Event) -> str:
        def build() -> tuple[str, list[str], str]:
            e = self.alias("e")
            where = [f"{e}.customer_id = {self.row}.customer_id", *self.event_row(cond, e)]
            where += self.window(cond.window, f"{e}.occurred_at", cond.loc)
            if cond.not_followed_by is not None:
                o = self.alias("o")
                purchase = f"and {o}.is_purchase " if cond.not_followed_by == "order" else ""
                where.append(
                    f"not exists (select 1 from {self.named('orders')} {o} where {o}.customer_id = {e}.customer_id "
                    f"{purchase}and {o}.ordered_at >= {e}.occurred_at and {o}.ordered_at < {self.now(cond.loc)})"
                )
            return f"{self.named('events')} {e}", where, e

        source, where, e = build()
        if self.event_time is not None:
            self.event_time = f"(select max({e}.occurred_at) from {source} where " + " and ".join(where) + ")"
        return self.count(source, where, cond.count)

    def _order(self, cond: Order) -> str:
        def check_value(name: str, cmp: Comparison) -> None:
            if name == "status":
                self.known_values(cmp, self.catalog.order_statuses, "order status")

        by_status = cond.where is not None and _mentions(cond.where, "status")

        def build(filtered: bool = True) -> tuple[str, list[str], str]:
            o = self.alias("o")
            where = [f"{o}.customer_id = {self.row}.customer_id"]
            if not by_status:
                where.append(f"{o}.is_purchase")
            where += self.window(cond.window, f"{o}.ordered_at", cond.loc)
            if cond.where is not None and filtered:
                where.append(matching(o))
            return f"{self.named('orders')} {o}", where, o

        def matching(o: str) -> str:
            assert cond.where is not None
            fields = self.catalog.order_fields
            return self.field_where(cond.where, fields, lambda n: f"{o}.{safe_identifier(n)}", check_value)

        if cond.share is not None:
            # the orders in the window (completed unless `where` names a status), and the share
            # of them matching `where`; no orders: no share, so no match
            source, where, o = build(filtered=False)
            body = f"from {source} where " + " and ".join(where)
            ratio = (
                f"(select cast(sum(case when {matching(o)} then 1 else 0 end) as {self.double_type()}) "
                f"/ nullif(count(*), 0) {body})"
            )
            return f"coalesce({self.predicate(ratio, _SHARE_TYPE, cond.share, 'share')}, false)"
        parts = []
        if cond.count is not None or cond.sum is None:
            source, where, _ = build()
            parts.append(self.count(source, where, cond.count))
        if cond.sum is not None:
            source, where, o = build()
            body = f"from {source} where " + " and ".join(where)
            expr = f"coalesce((select sum({o}.amount) {body}), 0)"
            parts.append(self.predicate(expr, _SUM_TYPE, cond.sum, "sum"))
        return parts[0] if len(parts) == 1 else "(" + " and ".join(parts) + ")"

    def message_row(self, cond: Message, a: str) -> tuple[str, str, list[str]]:
        """The relation of `cond`'s action (fct_messages for sent, else fct_message_events), the
        time column of one row `a` of it, and the predicates on that row (action, campaign, channel)."""
        if cond.channel is not None and cond.channel not in self.catalog.message_channels:
            raise cond.loc.key("channel").error(
                unknown_name("channel", cond.channel, self.catalog.message_channels)
            )
        if cond.action == "sent":
            relation, when, where = self.named("messages"), f"{a}.sent_at", [f"{a}.is_sent"]
        else:
            relation, when = self.named("message_events"), f"{a}.occurred_at"
            where = [f"{a}.event_type {_HUMAN_EVENTS[cond.action]}"]
            if cond.action != "unsubscribed":
                where.append(f"{a}.is_human")
        if cond.campaigns:
            listed = ", ".join(self.bind(n, cond.loc.key("campaign")) for n in cond.campaigns)
            where.append(f"{a}.campaign in ({listed})")
        if cond.channel is not None:
            where.append(f"{a}.channel = {self.bind(cond.channel, cond.loc.key('channel'))}")
        return relation, when, where

    def _message(self, cond: Message) -> str:
        a = self.alias("x")
        relation, when, row = self.message_row(cond, a)
        where = [f"{a}.customer_id = {self.row}.customer_id", *row]
        where += self.window(cond.window, when, cond.loc)
        found = f"exists (select 1 from {relation} {a} where " + " and ".join(where) + ")"
        return found if cond.flag else f"not {found}"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _whole_days(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_share(value: object) -> bool:
    return _is_number(value) and 0 < value < 1  # type: ignore[operator]


def _mentions(cond: Condition, name: str) -> bool:
    if isinstance(cond, All | AnyOf):
        return any(_mentions(c, name) for c in cond.items)
    if isinstance(cond, Not):
        return _mentions(cond.item, name)
    return isinstance(cond, Attribute) and cond.name == name


__all__ = [
    "CompileContext",
    "ConditionError",
    "TARGETS",
    "compile_condition",
    "compile_last_event_at",
    "compile_message_filter",
]
