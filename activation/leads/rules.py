"""Lead scoring rules: dbt_project/lead_scoring.yml, read and checked into plain data.

One file holds every rule. A rule gives `points` when its condition (the condition language,
docs/audiences.md) holds, in a named group with a cap:
- fit groups: conditions on the profile (attributes, consents, lifecycle, tags, orders); points
  count in full while the condition holds on the as-of date;
- behaviour groups: one `event:` or `message:` condition (pricing page viewed, form submitted,
  email clicked); points lose half their value every `half_life_days` days, by the age in whole
  days of the latest occurrence that satisfied the rule.
Stages: `nurtured` and `marketing_qualified` are total-score thresholds (docs/leads.md).

Every mistake is a ConditionError naming the file, the path in it (`rules[3].points`) and what
to do, as the audience and tag parsers report them. Compiling happens in activation.leads.generate.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activation.conditions import parse_condition
from activation.conditions.errors import Loc, known, unknown_name
from activation.conditions.literals import UnsafeLiteral, dbt_literal
from activation.conditions.nodes import (
    All,
    AnyOf,
    Audience,
    Condition,
    Event,
    Message,
    Not,
    Score,
)
from activation.tags import read_yaml_file

PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
RULES_NAME = "lead_scoring.yml"
TOP_KEYS = ("half_life_days", "stages", "groups", "rules")
GROUP_KEYS = ("kind", "cap", "half_life_days", "description")
RULE_KEYS = ("name", "group", "points", "reason", "where", "description")
KINDS = ("fit", "behaviour")
STAGES = ("nurtured", "marketing_qualified")  # score stages above raw_lead, lowest first
# Stages people record in the CRM (crm/lead_status), above the score stages: one in force wins over
# the score's stage (docs/leads.md). The order is lead_stages.stage_order; `lost` is last.
CRM_STAGES = ("sales_accepted", "opportunity", "deal", "lost")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
MAX_REASON = 60


@dataclass(frozen=True)
class Group:
    name: str
    kind: str  # fit | behaviour
    cap: float
    half_life_days: int | None  # behaviour groups only
    description: str
    loc: Loc


@dataclass(frozen=True)
class Rule:
    """One scoring rule. For behaviour rules `occurrence` is the event or message condition,
    `window_days` its within_days (None: all history) and `min_count` the count it needs."""

    name: str
    group: Group
    points: float
    reason: str
    where: Condition
    description: str
    window_days: int | None
    min_count: int
    loc: Loc

    @property
    def kind(self) -> str:
        return self.group.kind


@dataclass(frozen=True)
class LeadScoring:
    source: str
    stages: Mapping[str, float]  # nurtured, marketing_qualified -> minimum total score
    groups: tuple[Group, ...]
    rules: tuple[Rule, ...]


def default_rules_file(project_dir: Path | None = None) -> Path:
    return (project_dir or PROJECT_DIR) / RULES_NAME


def load(path: Path | None = None) -> LeadScoring:
    """The rules file parsed and checked (names, types, kinds); conditions are compiled later."""
    path = path or default_rules_file()
    raw, top = read_yaml_file(
        path, "the lead scoring file is missing (expected at {path}); see docs/leads.md"
    )
    return parse(raw, top.source)


def parse(raw: Any, source: str) -> LeadScoring:
    """The checked LeadScoring of a YAML value read from `source` (named in every error)."""
    top = Loc(source, "")
    if not isinstance(raw, Mapping):
        raise top.error(f"must be a mapping with keys {', '.join(TOP_KEYS)}")
    for key in raw:
        if key not in TOP_KEYS:
            raise top.key(str(key)).error(unknown_name("key", key, TOP_KEYS))
    for key in ("stages", "groups", "rules"):
        if key not in raw:
            raise top.error(f"needs `{key}:` (see docs/leads.md for the shape)")
    half_life = _whole_days(raw.get("half_life_days", 14), top.key("half_life_days"))
    stages = _stages(raw["stages"], top.key("stages"))
    groups = _groups(raw["groups"], top.key("groups"), half_life)
    rules = _rules(raw["rules"], top.key("rules"), groups)
    used = {r.group.name for r in rules}
    for group in groups.values():
        if group.name not in used:
            raise group.loc.error(f"group {group.name!r} has no rules: add one or remove the group")
    return LeadScoring(source, stages, tuple(groups.values()), tuple(rules))


def _number(raw: Any, loc: Loc, what: str) -> float:
    if not isinstance(raw, int | float) or isinstance(raw, bool):
        raise loc.error(f"{what} must be a number (got {raw!r})")
    return float(raw)


def _whole_days(raw: Any, loc: Loc) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < 1:
        raise loc.error(f"must be a whole number of days >= 1 (got {raw!r})")
    return raw


def _text(raw: Any, loc: Loc, what: str, limit: int | None = None) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise loc.error(f"{what} must be non-empty text (got {raw!r})")
    text = " ".join(raw.split())
    try:
        dbt_literal(text)
    except UnsafeLiteral as exc:
        raise loc.error(str(exc)) from None
    if limit is not None and len(text) > limit:
        raise loc.error(f"{what} is shown in lists of reasons: at most {limit} characters (got {len(text)})")
    return text


def _stages(raw: Any, loc: Loc) -> dict[str, float]:
    if not isinstance(raw, Mapping) or set(raw) != set(STAGES):
        raise loc.error(
            f"is a mapping of the score stages to their minimum total score: {known(STAGES)} "
            f"(e.g. {{nurtured: 20, marketing_qualified: 60}}); got {raw!r}"
        )
    stages = {name: _number(raw[name], loc.key(name), "a stage threshold") for name in STAGES}
    if not 0 < stages["nurtured"] < stages["marketing_qualified"]:
        raise loc.key("marketing_qualified").error(
            f"thresholds must rise: 0 < nurtured < marketing_qualified (got {stages['nurtured']:g} "
            f"and {stages['marketing_qualified']:g})"
        )
    return stages


def _groups(raw: Any, loc: Loc, half_life: int) -> dict[str, Group]:
    if not isinstance(raw, Mapping) or not raw:
        raise loc.error("is a mapping of group name to {kind: fit | behaviour, cap: N}, at least one")
    groups: dict[str, Group] = {}
    for name, spec in raw.items():
        at = loc.key(str(name))
        if not isinstance(name, str) or not _NAME.match(name):
            raise at.error(
                "a group name is lower-case letters, digits and underscores, starting with a letter"
            )
        if not isinstance(spec, Mapping):
            raise at.error(f"a group is a mapping with keys {', '.join(GROUP_KEYS)} (got {spec!r})")
        for key in spec:
            if key not in GROUP_KEYS:
                raise at.key(str(key)).error(unknown_name("key of a group", key, GROUP_KEYS))
        kind = spec.get("kind")
        if kind not in KINDS:
            raise at.key("kind").error(
                f"is fit (profile attributes, points in full) or behaviour (events and messages, "
                f"points decay); got {kind!r}"
            )
        if "cap" not in spec:
            raise at.error("needs `cap:`, the most points the group's rules give together")
        cap = _number(spec["cap"], at.key("cap"), "cap")
        if cap <= 0:
            raise at.key("cap").error(f"must be above 0 (got {cap:g})")
        own = spec.get("half_life_days")
        if own is not None and kind == "fit":
            raise at.key("half_life_days").error(
                "fit points do not decay: half_life_days is for behaviour groups"
            )
        life = _whole_days(own, at.key("half_life_days")) if own is not None else half_life
        description = _text(
            spec.get("description", name.replace("_", " ")), at.key("description"), "description"
        )
        groups[name] = Group(name, kind, cap, life if kind == "behaviour" else None, description, at)
    return groups


def _rules(raw: Any, loc: Loc, groups: Mapping[str, Group]) -> list[Rule]:
    if not isinstance(raw, list) or not raw:
        raise loc.error("is a list of rules, at least one (see docs/leads.md)")
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for i, item in enumerate(raw):
        rule = _rule(item, loc.index(i), groups)
        if rule.name in seen:
            raise (
                loc.index(i).key("name").error(f"rule {rule.name!r} is already defined at {seen[rule.name]}")
            )
        seen[rule.name] = rule.loc.path
        rules.append(rule)
    return rules


def _rule(raw: Any, loc: Loc, groups: Mapping[str, Group]) -> Rule:
    if not isinstance(raw, Mapping):
        raise loc.error(f"a rule is a mapping with keys {', '.join(RULE_KEYS)} (got {raw!r})")
    for key in raw:
        if key not in RULE_KEYS:
            raise loc.key(str(key)).error(unknown_name("key of a rule", key, RULE_KEYS))
    for key in ("name", "group", "points", "reason", "where"):
        if key not in raw:
            raise loc.error(f"a rule needs `{key}:` (name, group, points, reason and where are required)")
    name = raw["name"]
    if not isinstance(name, str) or not _NAME.match(name):
        raise loc.key("name").error(
            f"a rule name is lower-case letters, digits and underscores, starting with a letter (got {name!r})"
        )
    group_name = raw["group"]
    if group_name not in groups:
        raise loc.key("group").error(unknown_name("group", group_name, groups))
    group = groups[group_name]
    points = _number(raw["points"], loc.key("points"), "points")
    if points == 0:
        raise loc.key("points").error("must not be 0 (negative points are allowed: they lower the score)")
    reason = _text(raw["reason"], loc.key("reason"), "reason", MAX_REASON)
    description = _text(raw.get("description", reason), loc.key("description"), "description")
    where = parse_condition(raw["where"], loc.source, loc.key("where").path)
    _refuse_unbuildable(where)
    window, min_count = None, 1
    if group.kind == "behaviour":
        window, min_count = _occurrence(where, group)
    else:
        _refuse_behaviour(where, group)
    return Rule(name, group, points, reason, where, description, window, min_count, loc)


def _occurrence(where: Condition, group: Group) -> tuple[int | None, int]:
    """A behaviour rule is one event or message condition: its window and the count it needs."""
    if not isinstance(where, Event | Message):
        raise where.loc.error(
            f"group {group.name!r} is a behaviour group: its rules are one `event:` or `message:` "
            "condition (the occurrence whose age decays the points); put profile conditions in a fit group"
        )
    window = where.window
    if window is not None and (window.kind != "within_days" or not isinstance(window.value, int)):
        raise window.loc.error(
            "a behaviour rule's window is `within_days: N` (a whole number) or none: older occurrences "
            "already lose points by decay"
        )
    window_days = window.value if window is not None else None
    if isinstance(where, Message):
        if not where.flag:
            raise where.loc.error(
                f"`{where.action}: false` has no occurrence to score: write the opposite as a rule "
                "with negative points, or use a fit rule"
            )
        return window_days, 1
    if where.not_followed_by is not None:
        raise where.loc.key("not_followed_by").error(
            "leads have no purchase yet, so not_followed_by says nothing here: remove it"
        )
    if where.count is None:
        return window_days, 1
    count = where.count
    if (
        count.op != "gte"
        or not isinstance(count.value, int)
        or isinstance(count.value, bool)
        or count.value < 1
    ):
        raise count.loc.error(
            "a behaviour rule counts occurrences as `count: {gte: N}` (at least N in the window); "
            f"got {count.op}: {count.value!r}"
        )
    if count.value > 1 and window_days is None:
        raise count.loc.error("`count: {gte: N}` needs a window: add `within_days:` to the event")
    return window_days, int(count.value)


def _walk(cond: Condition):
    yield cond
    if isinstance(cond, All | AnyOf):
        for item in cond.items:
            yield from _walk(item)
    elif isinstance(cond, Not):
        yield from _walk(cond.item)


def _refuse_behaviour(where: Condition, group: Group) -> None:
    for node in _walk(where):
        if isinstance(node, Event | Message):
            raise node.loc.error(
                f"group {group.name!r} is a fit group: events and messages belong in a behaviour group, "
                "where their points decay with age"
            )


def _refuse_unbuildable(where: Condition) -> None:
    """Lead scores build with the marts, before the ML scores and the audiences that may read them."""
    for node in _walk(where):
        if isinstance(node, Score):
            raise node.loc.error(
                "lead rules cannot read ml scores (lead scores are built before scoring and compared "
                "with the propensity score in the backtest)"
            )
        if isinstance(node, Audience):
            raise node.loc.error(
                "lead rules cannot test audience membership (audiences may read lead scores)"
            )


__all__ = ["Group", "LeadScoring", "Rule", "default_rules_file", "load", "parse"]
