"""Tag rules: dbt_project/tags.yml, in the condition language, generates the customer_tags models.

    tideline tags build     # regenerate the models after changing the rules
    tideline tags check     # exit 1 (naming the files) when a generated model is stale
    (tideline/commands/tags.py; `tideline run` regenerates them too)

One rule per tag: name, description, `where` (docs/audiences.md), and optionally `since` (what
`tagged_at` is), `reason` (a sentence with the figures behind the tag), `expires_after_days` (a
validity window from `tagged_at`) and `needs_scores` (derived; if written it must agree). The
generator compiles each rule with the dbt target and writes, checked in:
- customer_tags_rules.sql: the tags that do not read ml.customer_scores, so they never wait for
  or depend on scoring (Dagster builds them with the other marts, before the ML assets);
- customer_tags_scored.sql: the tags that read the scores (a missing, empty or null score
  matches nobody, so without scores this model is empty, never an error);
- customer_tags.sql: the two together, with the tags journey steps added (the latest change per
  customer and tag in tideline_journeys.tag_changes is an addition; `source` says 'rule' or
  'journey'), the long table conditions and segments read;
- tag_health.sql: one row per rule (from the rules, not the data), tags nobody has included.
tests/unit/test_tag_rules.py regenerates them and fails on any difference, naming the command.

Values reach SQL through the condition compiler (literals through `dbt_literal`, identifiers
from the Catalog); thresholds can be dbt vars (`{var: tag_vip_top_share}`) so `--vars` tunes
them as before. Every mistake in the file is a ConditionError naming the file and the path inside it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from activation.conditions import (
    Catalog,
    CompileContext,
    ConditionError,
    compile_condition,
    compile_last_event_at,
    parse_condition,
)
from activation.conditions.catalog import BOOLEAN, INTEGER, NUMBER, TEXT, TIMESTAMP, safe_identifier
from activation.conditions.errors import Loc, known, unknown_name
from activation.conditions.literals import UnsafeLiteral, dbt_literal
from activation.conditions.nodes import All, AnyOf, Audience, Condition, Event, Not, Score, Tag, VarRef

PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"
RULES_NAME = "tags.yml"
MODELS_DIR = Path("models/marts/customers")
RULES_MODEL, SCORED_MODEL = "customer_tags_rules", "customer_tags_scored"
JOURNEY_TAG_CHANGES = "stg_tideline_journeys__tag_changes"  # tags journey steps add and remove
GENERATED = (RULES_MODEL, SCORED_MODEL, "customer_tags", "tag_health")
BUILD_COMMAND = "tideline tags build"

RULE_KEYS = ("name", "description", "where", "since", "reason", "expires_after_days", "needs_scores")
SINCE_WORDS = ("as_of", "stage_entered", "scored_at")
REASON_FORMATS = ("date", "percent", "percent1")
# Columns of marts.customer_lifecycle a reason can show, as `{lifecycle.<column>}`.
LIFECYCLE_FIELDS = {
    "lifecycle_stage": TEXT,
    "previous_stage": TEXT,
    "stage_entered_on": TIMESTAMP,
    "days_in_stage": INTEGER,
    "days_since_last_purchase": INTEGER,
}
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_TAG_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_AS_OF_TS = "cast({{ as_of_date() }} as timestamp)"


@dataclass(frozen=True)
class Since:
    """What tagged_at is: the as-of date, a timestamp attribute, the lifecycle stage entry, the
    scores' scored_at, or the latest event of `event`."""

    kind: str  # as_of | attribute | stage_entered | scored_at | last_event
    attribute: str | None = None
    event: Event | None = None


@dataclass(frozen=True)
class TagRule:
    name: str
    description: str
    where: Condition
    since: Since
    reason: str
    expires_after_days: int | VarRef | None
    needs_scores: bool
    loc: Loc


# --- loading ----------------------------------------------------------------------------------------


def default_rules_file() -> Path:
    return PROJECT_DIR / RULES_NAME


def display_name(path: Path, root: Path | None = None) -> str:
    """A file as messages name it: relative to the repository (or `root`) when inside it."""
    try:
        return str(path.resolve().relative_to((root or PROJECT_DIR.parent).resolve()))
    except ValueError:
        return str(path)


def read_yaml_file(path: Path, missing: str) -> tuple[Any, Loc]:
    """A rules file's YAML value and its location (named by display_name), or a ConditionError:
    `missing` (with the expected path) when there is no file, the line of a YAML syntax error."""
    source = display_name(path)
    top = Loc(source, "")
    if not path.exists():
        raise top.error(missing.format(path=path))
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(top)"
        raise ConditionError(source, where, f"is not valid YAML: {getattr(exc, 'problem', exc)}") from None
    return raw, top


def read_rules_yaml(path: Path) -> tuple[list[Any], Loc]:
    """The list under `tags:` and the location of the file, or a ConditionError."""
    raw, top = read_yaml_file(path, "the tag rules file is missing (expected at {path}); it lists every tag")
    if not isinstance(raw, Mapping) or set(raw) != {"tags"} or not isinstance(raw["tags"], list):
        raise top.error("must be a mapping with one key, `tags:`, holding a list of rules")
    return raw["tags"], top.key("tags")


@cache
def _names_of(path: Path, mtime: float) -> tuple[str, ...]:
    items, loc = read_rules_yaml(path)
    names = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise loc.index(i).error("each rule is a mapping with a `name:`")
        names.append(item["name"])
    return tuple(names)


def rule_names(path: Path | None = None) -> tuple[str, ...]:
    """The tag names of the rules file, in file order (what the condition Catalog calls tags)."""
    path = path or default_rules_file()
    return _names_of(path, path.stat().st_mtime if path.exists() else 0.0)


def dbt_vars(project_dir: Path) -> dict[str, Any]:
    """The `vars:` of dbt_project.yml: what `{var: name}` may name, with the defaults that check it."""
    data = yaml.safe_load((project_dir / "dbt_project.yml").read_text(encoding="utf-8")) or {}
    return dict(data.get("vars") or {})


def load_rules(path: Path) -> list[TagRule]:
    """Every rule of the file, parsed and checked (compiling happens in `render`)."""
    items, loc = read_rules_yaml(path)
    if not items:
        raise loc.error("lists no rules: add at least one (see docs/audiences.md, Tag rules)")
    rules: list[TagRule] = []
    seen: dict[str, str] = {}
    for i, item in enumerate(items):
        rule = _rule(item, loc.index(i))
        if rule.name in seen:
            raise loc.index(i).key("name").error(f"tag {rule.name!r} is already defined at {seen[rule.name]}")
        seen[rule.name] = rule.loc.path
        rules.append(rule)
    return rules


def _text(raw: Any, loc: Loc, what: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise loc.error(f"{what} must be non-empty text (got {raw!r})")
    try:
        dbt_literal(raw)
    except UnsafeLiteral as exc:
        raise loc.error(str(exc)) from None
    return " ".join(raw.split())


def _rule(raw: Any, loc: Loc) -> TagRule:
    if not isinstance(raw, Mapping):
        raise loc.error(f"a rule is a mapping with keys {', '.join(RULE_KEYS)} (got {raw!r})")
    for key in raw:
        if key not in RULE_KEYS:
            raise loc.key(str(key)).error(unknown_name("key of a tag rule", key, RULE_KEYS))
    for key in ("name", "description", "where"):
        if key not in raw:
            raise loc.error(f"a tag rule needs `{key}:` (name, description and where are required)")
    name = raw["name"]
    if not isinstance(name, str) or not _TAG_NAME.match(name):
        raise loc.key("name").error(
            f"a tag name is lower-case letters, digits and underscores, starting with a letter (got {name!r})"
        )
    where = parse_condition(raw["where"], loc.source, loc.key("where").path)
    _refuse_circular(where)
    since = _since(raw.get("since", "as_of"), loc.key("since"))
    expires = None
    if "expires_after_days" in raw:
        expires = _expiry(raw["expires_after_days"], loc.key("expires_after_days"))
    description = _text(raw["description"], loc.key("description"), "description")
    reason = _text(raw.get("reason", description), loc.key("reason"), "reason")
    uses_scores = _mentions_scores(where) or since.kind == "scored_at" or "{score." in reason
    declared = raw.get("needs_scores")
    if declared is not None:
        if not isinstance(declared, bool):
            raise loc.key("needs_scores").error(f"takes true or false (got {declared!r})")
        if declared != uses_scores:
            says = "reads" if uses_scores else "does not read"
            raise loc.key("needs_scores").error(
                f"is {str(declared).lower()}, but the rule {says} ml.customer_scores "
                f"(score conditions, since: scored_at, {{score.…}} in the reason); drop the key or fix it"
            )
    return TagRule(
        name=name,
        description=description,
        where=where,
        since=since,
        reason=reason,
        expires_after_days=expires,
        needs_scores=uses_scores,
        loc=loc,
    )


def _refuse_circular(cond: Condition) -> None:
    """Tag rules build customer_tags, so they cannot test tags or audiences (which read tags)."""
    if isinstance(cond, All | AnyOf):
        for item in cond.items:
            _refuse_circular(item)
    elif isinstance(cond, Not):
        _refuse_circular(cond.item)
    elif isinstance(cond, Tag):
        raise cond.loc.error(
            "a tag rule cannot test tags (customer_tags is built from these rules): "
            "write the other tag's condition here instead"
        )
    elif isinstance(cond, Audience):
        raise cond.loc.error("a tag rule cannot test audience membership (audiences are built from tags)")


def _mentions_scores(cond: Condition) -> bool:
    if isinstance(cond, All | AnyOf):
        return any(_mentions_scores(c) for c in cond.items)
    if isinstance(cond, Not):
        return _mentions_scores(cond.item)
    return isinstance(cond, Score)


def _since(raw: Any, loc: Loc) -> Since:
    if isinstance(raw, Mapping):
        if set(raw) != {"last_event"}:
            raise loc.error("since as a mapping is {last_event: {type: ..., within_days: ...}}")
        event = parse_condition({"event": raw["last_event"]}, loc.source, loc.path)
        assert isinstance(event, Event)
        return Since("last_event", event=event)
    if not isinstance(raw, str) or not raw.strip():
        raise loc.error(
            f"since is one of {known(SINCE_WORDS)}, a timestamp attribute (signed_up_at, "
            f"first_order_at, ...) or {{last_event: {{...}}}} (got {raw!r})"
        )
    word = raw.strip()
    if word in SINCE_WORDS:
        return Since(word)
    return Since("attribute", attribute=word)


def _expiry(raw: Any, loc: Loc) -> int | VarRef:
    if isinstance(raw, Mapping) and set(raw) == {"var"} and isinstance(raw["var"], str):
        return VarRef(raw["var"], loc)
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < 0:
        raise loc.error(f"must be a whole number of days >= 0 or {{var: name}} (got {raw!r})")
    return raw


# --- rendering --------------------------------------------------------------------------------------


@dataclass
class _Joins:
    lifecycle: bool = False
    scores: bool = False


def render(rules: Sequence[TagRule], catalog: Catalog, variables: Mapping[str, Any]) -> dict[str, str]:
    """model name -> SQL text of every generated model (compiling each rule's condition)."""
    ctx = CompileContext(target="dbt", vars=variables)
    blocks = {rule.name: _rule_sql(rule, catalog, ctx, variables) for rule in rules}
    plain = [r for r in rules if not r.needs_scores]
    scored = [r for r in rules if r.needs_scores]
    return {
        RULES_MODEL: _union_model(
            plain, blocks, "The tags that do not read the ML scores (never wait for or depend on scoring)."
        ),
        SCORED_MODEL: _union_model(
            scored,
            blocks,
            "The tags that read ml.customer_scores; without scores (none, empty, null) none match.",
        ),
        "customer_tags": _customer_tags_model(),
        "tag_health": _health_model(rules),
    }


def _customer_tags_model() -> str:
    """The rule tags (both models) and the tags journey steps added: for each customer and tag
    the latest change in tideline_journeys.tag_changes up to the as-of date, when it is an
    addition (on a tie at the same clock the removal wins), for customers of dim_customers (a
    customer the live feed entered before the next build gets it then), unless a rule already
    gives the customer the tag (one row per customer and tag; the rule's)."""
    return _header(
        "customer_tags: every rule's tags and the tags journeys added, one row per customer and tag "
        "on the as-of date."
    ) + (
        "with rule_tags as (\n"
        f"    select customer_id, tag, tagged_at, reason, as_of_date from {{{{ ref('{RULES_MODEL}') }}}}\n"
        "    union all\n"
        f"    select customer_id, tag, tagged_at, reason, as_of_date from {{{{ ref('{SCORED_MODEL}') }}}}\n"
        "),\n\n"
        "journey_tag_changes as (\n"
        "    select\n"
        "        customer_id,\n        tag,\n        is_added,\n        journey,\n        changed_at,\n"
        "        row_number() over (\n"
        "            partition by customer_id, tag order by changed_at desc, case when is_added then 1 else 0 end\n"
        "        ) as recency\n"
        f"    from {{{{ ref('{JOURNEY_TAG_CHANGES}') }}}}\n"
        "    where changed_at < {{ as_of_cutoff() }}\n"
        "),\n\n"
        "journey_tags as (\n"
        "    select\n"
        "        changes.customer_id,\n        changes.tag,\n        changes.changed_at as tagged_at,\n"
        "        'added by journey ' || changes.journey || ' on ' || cast(cast(changes.changed_at as date) as {{ dbt.type_string() }})\n"
        "            as reason\n"
        "    from journey_tag_changes as changes\n"
        "    inner join {{ ref('dim_customers') }} as customers on changes.customer_id = customers.customer_id\n"
        "    where\n"
        "        changes.recency = 1\n"
        "        and changes.is_added\n"
        "        and not exists (\n"
        "            select 1 from rule_tags\n"
        "            where rule_tags.customer_id = changes.customer_id and rule_tags.tag = changes.tag\n"
        "        )\n"
        ")\n\n"
        "select customer_id, tag, tagged_at, reason, as_of_date, 'rule' as source from rule_tags\n"
        "union all\n"
        "select customer_id, tag, tagged_at, reason, {{ as_of_date() }} as as_of_date, 'journey' as source\n"
        "from journey_tags\n"
    )


def _header(what: str) -> str:
    return (
        f"-- {what}\n"
        f"-- Generated from dbt_project/{RULES_NAME}: do not edit. Change the rules there, then run\n"
        f"-- `{BUILD_COMMAND}` (make test fails while this file is stale).\n"
    )


def _union_model(rules: Sequence[TagRule], blocks: Mapping[str, str], what: str) -> str:
    if not rules:
        return _header(what) + (
            "select\n    cast(null as {{ dbt.type_string() }}) as customer_id,\n    cast(null as {{ dbt.type_string() }}) as tag,\n"
            "    cast(null as timestamp) as tagged_at,\n    cast(null as {{ dbt.type_string() }}) as reason,\n"
            "    {{ as_of_date() }} as as_of_date\nwhere false\n"
        )
    ctes = ",\n\n".join(blocks[r.name] for r in rules)
    union = "\n    union all\n".join(
        f"    select customer_id, tag, tagged_at, reason from {r.name}" for r in rules
    )
    return (
        _header(what)
        + f"with\n\n{ctes},\n\nfinal as (\n{union}\n)\n\n"
        + "select customer_id, tag, tagged_at, reason, {{ as_of_date() }} as as_of_date\nfrom final\n"
    )


def _rule_sql(rule: TagRule, catalog: Catalog, ctx: CompileContext, variables: Mapping[str, Any]) -> str:
    condition, _ = compile_condition(rule.where, catalog, ctx)
    joins = _Joins()
    tagged_at = _since_sql(rule, catalog, ctx, joins)
    pieces = _reason_pieces(rule, catalog, variables, joins)
    fields = [f"        {sql} as reason_{i}" for i, (kind, sql) in enumerate(pieces) if kind == "field"]
    matched_cols = ",\n".join(["        c.customer_id", f"        {tagged_at} as tagged_at", *fields])
    joined = ""
    if joins.lifecycle:
        joined += "\n    left join {{ ref('customer_lifecycle') }} as lc on c.customer_id = lc.customer_id"
    if joins.scores:
        joined += f"\n    left join {_latest_scores(catalog)} as sc on c.customer_id = sc.customer_id"
    reason = " || ".join(f"reason_{i}" if kind == "field" else sql for i, (kind, sql) in enumerate(pieces))
    expiry = ""
    if rule.expires_after_days is not None:
        limit = _expiry_sql(rule, variables)
        expiry = f"\n    where {{{{ days_between('tagged_at', as_of_date()) }}}} <= {limit}"
    return (
        f"-- {rule.name}: {rule.description}\n"
        f"{rule.name}__matched as (\n"
        "    -- compiled conditions are one line each (docs/audiences.md, How it compiles)\n"
        "    -- noqa: disable=AL01,LT14\n"
        f"    select\n{matched_cols}\n"
        f"    from {{{{ ref('dim_customers') }}}} as c{joined}\n"
        f"    where {condition}\n    -- noqa: enable=all\n),\n\n"
        f"{rule.name} as (\n    select\n        customer_id,\n        {dbt_literal(rule.name)} as tag,\n"
        f"        tagged_at,\n        {reason or dbt_literal(rule.description)} as reason\n"
        f"    from {rule.name}__matched{expiry}\n)"
    )


def _expiry_sql(rule: TagRule, variables: Mapping[str, Any]) -> str:
    days = rule.expires_after_days
    at = rule.loc.key("expires_after_days")
    if isinstance(days, VarRef):
        if days.name not in variables:
            raise at.key("var").error(unknown_name("dbt var", days.name, variables))
        value = variables[days.name]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise at.key("var").error(
                f"dbt var {days.name} is {value!r}: a whole number of days >= 0 is needed"
            )
        return f"{{{{ var('{safe_identifier(days.name)}') }}}}"
    return str(days)


def _since_sql(rule: TagRule, catalog: Catalog, ctx: CompileContext, joins: _Joins) -> str:
    since, at = rule.since, rule.loc.key("since")
    if since.kind == "as_of":
        return _AS_OF_TS
    if since.kind == "stage_entered":
        joins.lifecycle = True
        return f"coalesce(cast(lc.stage_entered_on as timestamp), {_AS_OF_TS})"
    if since.kind == "scored_at":
        joins.scores = True
        return f"coalesce(sc.scored_at, {_AS_OF_TS})"
    if since.kind == "last_event":
        assert since.event is not None
        sql, _ = compile_last_event_at(since.event, catalog, ctx)
        return f"coalesce({sql}, {_AS_OF_TS})"
    column = catalog.attributes.get(since.attribute or "")
    if column is None or column.type != TIMESTAMP or column.personal:
        stamps = [c.name for c in catalog.attributes.values() if c.type == TIMESTAMP and not c.personal]
        raise at.error(
            f"unknown since {since.attribute!r}: use one of {known(SINCE_WORDS)}, {{last_event: ...}} "
            f"or a timestamp attribute ({known(stamps)})"
        )
    return f"coalesce(c.{safe_identifier(column.name)}, {_AS_OF_TS})"


def _reason_pieces(
    rule: TagRule, catalog: Catalog, variables: Mapping[str, Any], joins: _Joins
) -> list[tuple[str, str]]:
    """The reason template as (kind, sql) pieces: text literals, fields computed in the matched
    CTE (`field`), and values computed after it (`late`: the days since tagged_at, tagged_at)."""
    at = rule.loc.key("reason")
    text = rule.reason
    pieces: list[tuple[str, str]] = []
    pos = 0
    for match in _PLACEHOLDER.finditer(text):
        if match.start() > pos:
            pieces.append(("text", _literal_text(text[pos : match.start()], at)))
        pieces.append(_placeholder(match.group(1).strip(), at, catalog, variables, joins, rule.name))
        pos = match.end()
    if pos < len(text):
        pieces.append(("text", _literal_text(text[pos:], at)))
    return pieces


def _literal_text(text: str, at: Loc) -> str:
    if "{" in text or "}" in text:
        raise at.error(f"unbalanced brace in {text!r}: placeholders are {{field}} or {{field:format}}")
    return dbt_literal(text)


def _formatted(expr: str, kind: str, fmt: str | None, at: Loc, label: str) -> str:
    if fmt in ("percent", "percent1"):
        if kind not in (INTEGER, NUMBER):
            raise at.error(f"{{{label}:{fmt}}}: {fmt} needs a number ({label} is {kind})")
        digits = ", 1" if fmt == "percent1" else ""
        return f"{{{{ number_text({_jinja_argument(f'100 * {expr}')}{digits}) }}}}"
    if fmt == "date" or kind == TIMESTAMP:
        if kind != TIMESTAMP:
            raise at.error(f"{{{label}:date}}: date needs a timestamp ({label} is {kind})")
        return f"cast(cast({expr} as date) as {{{{ dbt.type_string() }}}})"
    if kind == NUMBER:
        return f"{{{{ number_text({_jinja_argument(expr)}, 2) }}}}"
    if kind in (INTEGER, BOOLEAN):
        return f"cast({expr} as {{{{ dbt.type_string() }}}})"
    return expr


def _jinja_argument(expr: str) -> str:
    """A SQL expression as the argument of a macro call inside `{{ }}`: its SQL text as string
    literals, its Jinja expressions (`{{ var('x') }}`) as themselves, joined with `~`."""
    pieces = [p for p in re.split(r"(\{\{.*?\}\})", expr) if p]
    return " ~ ".join(p[2:-2].strip() if p.startswith("{{") else repr(p) for p in pieces)


def _placeholder(
    token: str, at: Loc, catalog: Catalog, variables: Mapping[str, Any], joins: _Joins, rule: str
) -> tuple[str, str]:
    field, _, fmt = token.partition(":")
    field, fmt_or_none = field.strip(), (fmt.strip() or None)
    if fmt_or_none is not None and fmt_or_none not in REASON_FORMATS:
        raise at.error(f"{{{token}}}: " + unknown_name("format", fmt_or_none, REASON_FORMATS))
    scope, _, name = field.rpartition(".")
    if scope == "var":
        if name not in variables:
            raise at.error(f"{{{token}}}: " + unknown_name("dbt var", name, variables))
        value = variables[name]
        kind = NUMBER if isinstance(value, int | float) and not isinstance(value, bool) else TEXT
        return "field", _formatted(f"{{{{ var('{safe_identifier(name)}') }}}}", kind, fmt_or_none, at, field)
    if scope == "lifecycle":
        if name not in LIFECYCLE_FIELDS:
            raise at.error(f"{{{token}}}: " + unknown_name("lifecycle field", name, LIFECYCLE_FIELDS))
        joins.lifecycle = True
        return "field", _formatted(f"lc.{name}", LIFECYCLE_FIELDS[name], fmt_or_none, at, field)
    if scope == "score":
        if name not in catalog.scores:
            raise at.error(f"{{{token}}}: " + unknown_name("score", name, catalog.scores))
        joins.scores = True
        return "field", _formatted(f"sc.{safe_identifier(name)}", NUMBER, fmt_or_none, at, field)
    if scope:
        raise at.error(
            f"{{{token}}}: unknown scope {scope!r} (use var., lifecycle. or score., or an attribute)"
        )
    if name == "tagged_at":
        return "late", _formatted("tagged_at", TIMESTAMP, fmt_or_none, at, field)
    if name == "days_since_tagged":
        return "late", "cast({{ days_between('tagged_at', as_of_date()) }} as {{ dbt.type_string() }})"
    column = catalog.attributes.get(name)
    if column is None:
        names = [
            *(c for c, col in catalog.attributes.items() if not col.personal),
            "tagged_at",
            "days_since_tagged",
        ]
        raise at.error(f"{{{token}}}: " + unknown_name("reason field", name, names))
    if column.personal:
        raise at.error(f"{{{token}}}: {name} is personal data and never goes into a reason")
    return "field", _formatted(f"c.{safe_identifier(name)}", column.type, fmt_or_none, at, field)


def _latest_scores(catalog: Catalog) -> str:
    """Each customer's latest scores on or before the as-of date (the language's `score:` rule)."""
    columns = ", ".join(safe_identifier(c) for c in catalog.scores)
    return (
        f"(select customer_id, scored_at, {columns} from (select customer_id, scored_at, {columns}, "
        "row_number() over (partition by customer_id order by as_of_date desc, scored_at desc) as nth "
        "from {{ source('ml', 'customer_scores') }} where as_of_date <= {{ as_of_date() }}) as s "
        "where nth = 1)"
    )


def _health_model(rules: Sequence[TagRule]) -> str:
    values = ",\n".join(
        f"        ({dbt_literal(r.name)}, {dbt_literal(r.description)}, {str(r.needs_scores).lower()})"
        for r in rules
    )
    return _header("tag_health: one row per tag rule, even when no customer has the tag.") + (
        "with definitions as (\n"
        "    select rules.tag, rules.description, rules.needs_scores\n"
        f"    from (\n        values\n{values}\n    ) as rules (tag, description, needs_scores)\n"
        "),\n\n"
        "counts as (\n"
        "    select tag, count(*) as customers_tagged, min(tagged_at) as oldest_tagged_at, "
        "max(tagged_at) as newest_tagged_at\n"
        "    from {{ ref('customer_tags') }}\n    group by tag\n),\n\n"
        "population as (\n    select count(*) as customers from {{ ref('dim_customers') }}\n)\n\n"
        "select\n"
        "    definitions.tag,\n    definitions.description,\n    definitions.needs_scores,\n"
        "    coalesce(counts.customers_tagged, 0) as customers_tagged,\n"
        "    case\n        when population.customers > 0\n"
        "            then {{ round_to(share('coalesce(counts.customers_tagged, 0)', 'population.customers'), 4) }}\n"
        "        else 0\n    end\n        as coverage_share,\n"
        "    counts.oldest_tagged_at,\n    counts.newest_tagged_at,\n"
        "    {{ days_between('counts.newest_tagged_at', as_of_date()) }} as days_since_newest,\n"
        "    {{ as_of_date() }} as as_of_date\n"
        "from definitions\ncross join population\nleft join counts on definitions.tag = counts.tag\n"
    )


# --- build and check --------------------------------------------------------------------------------


def generate(project_dir: Path | None = None, rules_file: Path | None = None) -> dict[Path, str]:
    """path -> text of every generated model, from the rules file (default: the project's)."""
    project_dir = project_dir or PROJECT_DIR
    variables = dbt_vars(project_dir)
    rules = load_rules(rules_file or project_dir / RULES_NAME)
    catalog = Catalog(tags=tuple(r.name for r in rules))
    return {
        project_dir / MODELS_DIR / f"{name}.sql": sql
        for name, sql in render(rules, catalog, variables).items()
    }


def build(project_dir: Path | None = None, rules_file: Path | None = None) -> list[Path]:
    """Write the generated models; returns those whose text changed."""
    changed = []
    for path, text in generate(project_dir, rules_file).items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


def stale(project_dir: Path | None = None, rules_file: Path | None = None) -> list[Path]:
    """The generated models that differ from what the rules file generates (missing ones too)."""
    return [
        path
        for path, text in generate(project_dir, rules_file).items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
