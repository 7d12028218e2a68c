"""parse_journey / load_journeys: a journey file (its YAML value) -> a validated `Journey`.

    journeys = load_journeys(Path("config/journeys"), catalog=Catalog.default(), destinations=cfg.destinations,
                             templates_dir=Path("config/templates"))

Everything is checked when the file is read, not in a tick: the keys, the entry trigger, every
duration, every step and where it leads (each `next`, `else`, `timed_out` and split arm names a
step or `end`; every step is reachable from the first; no loop without a wait, which would go
round within one tick), the destinations and templates the steps name, and every condition
(parsed with activation.conditions at the path where it sits and, given a catalog, compiled once
so an unknown tag, attribute or audience fails now). Every error is a JourneyError naming the
file, the step (index and id) and the field:

    config/journeys/cart.yml: steps[2] (reminder).send.destination: no destination named 'emial'
    (known: crm, email, sms)

`Journey.canonical` is the file's value normalised: every default filled in (so writing a default
out is not a new version), durations as `{seconds: N}`, dates as ISO text, `next` explicit on
every step. It is plain JSON and itself a valid journey file: `parse_journey(j.canonical, ...)`
gives the same journey and version, so the tick can rebuild a version customers are still in
from the definition stored for it. The format is documented in docs/journeys.md.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from activation.conditions import (
    Catalog,
    CompileContext,
    Condition,
    ConditionError,
    compile_condition,
    parse_condition,
)
from activation.conditions.catalog import TIMESTAMP
from activation.conditions.errors import known, unknown_name
from activation.conditions.nodes import Event, Window
from activation.destinations.base import ConfigError
from activation.launches.spec import LaunchSpec, parse_launch

from .spec import (
    END,
    NODE_KINDS,
    STATUSES,
    TRIGGERS,
    AudienceTrigger,
    Branch,
    BranchArm,
    ConditionTrigger,
    DateTrigger,
    Entry,
    EventTrigger,
    Goal,
    Journey,
    JourneyError,
    Notify,
    Send,
    Split,
    SplitArm,
    Step,
    SyncAction,
    TagAction,
    Trigger,
    Wait,
)

TOP_KEYS = ("description", "owner", "status", "entry", "goal", "exit_when", "steps")
ENTRY_KEYS = (*TRIGGERS, "lookback", "re_entry", "exclude", "holdout")
GOAL_KEYS = ("when", "within_days")
STEP_KEYS = ("id", "next", *NODE_KINDS)
DATE_KEYS = ("attribute", "offset_days")
DURATION_UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}  # seconds: the canonical form
WAIT_KEYS = (*DURATION_UNITS, "until_time", "event", "timeout", "timed_out")
CONTENT_KEYS = ("template", "subject", "text", "html", "title", "body", "variables")
LAUNCH_KEYS = ("pilot", "approval_above")  # a staged launch (activation.launches.spec)
SEND_KEYS = (
    "destination",
    "channel",
    "fields",
    "content",
    "frequency_cap",
    "campaign",
    *CONTENT_KEYS,
    *LAUNCH_KEYS,
)
SYNC_KEYS = ("destination", "fields")
NOTIFY_KEYS = ("destination", "message", "route")
SPLIT_ARM_KEYS = ("weight", "next")
CHANNELS = ("email", "sms", "push")
# Inline content by channel: (required parts, one-of parts, allowed parts). A template instead is a
# folder of the templates directory (config/templates/<name>/, as campaigns use).
INLINE_PARTS = {
    "email": (("subject",), ("text", "html"), ("subject", "text", "html")),
    "sms": (("text",), (), ("text",)),
    "push": (("title", "body"), (), ("title", "body")),
}
INLINE_HINT = {"email": "subject, and text or html", "sms": "text", "push": "title and body"}
RE_ENTRY = ("never", "always")
ROUTES = ("owner", "manager", "all_owners", "first_owner", "team")
DEFAULT_STATUS = "active"
DEFAULT_LOOKBACK = Entry.__dataclass_fields__["lookback"].default
DEFAULT_GOAL_WHEN = {"order": {"since": "entry"}}
DEFAULT_FREQUENCY_CAP = "marketing"
DEFAULT_ROUTE = "owner"
MAX_HOLDOUT = 0.5
WEIGHT_TOLERANCE = 1e-6
MAX_NAME_LENGTH = 48
MAX_TEXT_NAME = 100  # campaign names, as the activation config allows
BIRTHDAY = "birthday"
BIRTH_DATE_COLUMN = "birth_date"
ANCHOR = "c.entered_at"  # only compiled to check names; the tick compiles with its own anchor

# Journey names and step ids go into ledger keys joined by `__`
# (`journey__<journey>__<step>__<destination>`): lower-case words joined by single underscores, so
# a key reads back one way only.
_KEY_NAME = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
_PLAIN = re.compile(r"^[a-z][a-z0-9_]*$")  # tag names, variables
_ARM = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")  # split arms: A, B, control (the ledger's variant)
_TEMPLATE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")  # a folder name, never a path
_TIME = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


# --- public API -----------------------------------------------------------------------------------


def parse_journey(
    raw: Any,
    source: str,
    name: str,
    *,
    catalog: Catalog | None = None,
    destinations: Mapping[str, Mapping[str, Any]] | None = None,
    templates_dir: Path | None = None,
) -> Journey:
    """The validated Journey of `raw` (the YAML value of `source`, named `name`), or a JourneyError
    naming the file, the step and the field. With `catalog`, every condition is compiled once
    (unknown names fail here; tags the journey's own steps add or remove count as known); with
    `destinations` (name -> config block), every destination named must be one of them; with
    `templates_dir`, every template must be a folder in it."""
    _check_name(name, source)
    if raw is None:
        raise _At(source, "").error(
            f"the file is empty: a journey needs at least entry and steps ({_KEYS_HINT})"
        )
    if catalog is not None:
        catalog = catalog.with_tags(_tags_named([raw]))
    return _Reader(source, catalog, destinations, templates_dir).journey(raw, name)


def load_journeys(
    directory: Path,
    *,
    catalog: Catalog | None = None,
    destinations: Mapping[str, Mapping[str, Any]] | None = None,
    templates_dir: Path | None = None,
) -> list[Journey]:
    """Every journey file (`*.yml`, `*.yaml`) in `directory`, validated, sorted by name (the file
    stem); a missing directory holds none. Tags any journey adds or removes are known to all."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    paths = sorted(
        (p for p in directory.iterdir() if p.suffix in (".yml", ".yaml") and p.is_file()),
        key=lambda p: (p.stem, p.suffix),
    )
    raws: dict[str, tuple[str, Any]] = {}
    for path in paths:
        source = str(path)
        if path.stem in raws:
            raise JourneyError(
                f"{source}: (file name): journey {path.stem!r} is also defined by {raws[path.stem][0]}: "
                "keep one file per journey"
            )
        _check_name(path.stem, source)
        raws[path.stem] = (source, read_yaml(path))
    if catalog is not None:
        catalog = catalog.with_tags(_tags_named(raw for _, raw in raws.values()))
    return [
        parse_journey(
            raw, source, name, catalog=catalog, destinations=destinations, templates_dir=templates_dir
        )
        for name, (source, raw) in raws.items()
    ]


def read_yaml(path: Path) -> Any:
    """The YAML value of a journey file; a syntax error or a key written twice in one mapping (YAML
    would silently keep the last) is a JourneyError naming the file and the line."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise JourneyError(f"{source}: (top): not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise JourneyError(f"{source}: (top): not valid YAML: {_yaml_problem(exc)}") from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """`line 3, column 1: key 'steps' is written twice` (one line; the YAML text is not repeated)."""
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem is None:
        return str(exc)
    mark = exc.problem_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{exc.problem}" + (f" ({exc.context})" if exc.context else "")


def describe_journey(journey: Journey) -> list[str]:
    """One line per step, for the CLI: `welcome: send email (template welcome) -> two_days`."""
    steps = journey.canonical.get("steps") if journey.canonical else None
    return [
        f"{step.id}: {_describe(step, steps[i] if isinstance(steps, list) else None)}"
        for i, step in enumerate(journey.steps)
    ]


# --- locations and small checks -------------------------------------------------------------------


@dataclass(frozen=True)
class _At:
    """Where a value sits: the file and the path inside it (`steps[2] (reminder).send.destination`)."""

    source: str
    path: str

    def key(self, name: object) -> _At:
        return _At(self.source, f"{self.path}.{name}" if self.path else str(name))

    def index(self, i: int) -> _At:
        return _At(self.source, f"{self.path}[{i}]")

    def error(self, message: str) -> JourneyError:
        return JourneyError(f"{self.source}: {self.path or '(top)'}: {message}")


_KEYS_HINT = f"keys: {known(TOP_KEYS)}"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _no_named(what: str, name: object, names: Iterable[str]) -> str:
    return f"no {what} named {_show(name)} (known: {known(names) or 'none'})"


def _check_name(name: str, source: str) -> None:
    if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH or not _KEY_NAME.match(name):
        raise JourneyError(
            f"{source}: (file name): {name!r} is not a usable journey name: rename the file to lower-case "
            f"words of letters and digits joined by single underscores, starting with a letter, at most "
            f"{MAX_NAME_LENGTH} characters (e.g. cart_abandonment.yml)"
        )


def _mapping(raw: Any, at: _At, what: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise at.error(f"{what} must be a mapping with keys from: {known(allowed)} (got {_show(raw)})")
    for key in raw:
        if key not in allowed:
            raise at.key(key).error(unknown_name(f"key of {what}", key, allowed))
    return raw


def _text(raw: Any, at: _At, what: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise at.error(f"{what} must be non-empty text (got {_show(raw)})")
    return raw.strip()


def _whole(raw: Any, at: _At, what: str, minimum: int | None) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or (minimum is not None and raw < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise at.error(f"{what} must be a whole number{bound} (got {_show(raw)})")
    return raw


def _number(raw: Any) -> bool:
    return isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw)


def _json(value: Any) -> Any:
    """A YAML value as plain JSON: dates as ISO text, tuples as lists, keys as text."""
    if isinstance(value, Mapping):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return value


def _tags_named(raws: Iterable[Any]) -> list[str]:
    """The tag names the steps of these (unchecked) journey values add or remove."""
    names: list[str] = []
    for raw in raws:
        steps = raw.get("steps") if isinstance(raw, Mapping) else None
        for step in steps if isinstance(steps, list) else ():
            tag = step.get("tag") if isinstance(step, Mapping) else None
            if isinstance(tag, Mapping):
                names += [v for k, v in tag.items() if k in ("add", "remove") and isinstance(v, str)]
    return [n for n in dict.fromkeys(names) if _PLAIN.match(n)]


def _windows(node: Any) -> Iterable[Window]:
    """Every Window inside a condition tree."""
    if isinstance(node, Window):
        yield node
    elif isinstance(node, tuple):
        for item in node:
            yield from _windows(item)
    elif dataclasses.is_dataclass(node):
        for f in dataclasses.fields(node):
            yield from _windows(getattr(node, f.name))


# --- the reader -----------------------------------------------------------------------------------


class _Reader:
    """Reads one journey value; returns each part's dataclass and its canonical value."""

    def __init__(
        self,
        source: str,
        catalog: Catalog | None,
        destinations: Mapping[str, Mapping[str, Any]] | None,
        templates_dir: Path | None,
    ):
        self.source = source
        self.catalog = catalog
        self.destinations = destinations
        self.templates_dir = Path(templates_dir) if templates_dir is not None else None
        self.step_ids: tuple[str, ...] = ()

    # --- the file ---------------------------------------------------------------------------------

    def journey(self, raw: Any, name: str) -> Journey:
        top = _At(self.source, "")
        raw = _mapping(raw, top, "a journey file", TOP_KEYS)
        for key in ("entry", "steps"):
            if key not in raw:
                raise top.key(key).error(f"missing: a journey needs entry and steps ({_KEYS_HINT})")
        status = raw.get("status", DEFAULT_STATUS)
        if status not in STATUSES:
            raise top.key("status").error(f"must be one of {', '.join(STATUSES)} (got {_show(status)})")
        description = (
            _text(raw["description"], top.key("description"), "description") if "description" in raw else ""
        )
        owner = _text(raw["owner"], top.key("owner"), "owner") if "owner" in raw else None
        entry, entry_c = self.entry(raw["entry"], top.key("entry"))
        goal, goal_c = self.goal(raw["goal"], top.key("goal")) if "goal" in raw else (None, None)
        exit_when = self.condition(raw["exit_when"], top.key("exit_when")) if "exit_when" in raw else None
        steps, steps_c = self.steps(raw["steps"], top.key("steps"))
        canonical: dict[str, Any] = {"status": status, "entry": entry_c}
        if description:  # an empty description is no description (and parses back)
            canonical["description"] = description
        if owner is not None:
            canonical["owner"] = owner
        if goal_c is not None:
            canonical["goal"] = goal_c
        if exit_when is not None:
            canonical["exit_when"] = _json(raw["exit_when"])
        canonical["steps"] = steps_c
        return Journey(
            name=name,
            source=self.source,
            entry=entry,
            steps=steps,
            status=status,
            description=description,
            owner=owner,
            goal=goal,
            exit_when=exit_when,
            canonical=canonical,
        )

    # --- conditions -------------------------------------------------------------------------------

    def condition(self, raw: Any, at: _At, *, before_entry: str | None = None) -> Condition:
        """The condition at `at`, compiled once against the catalog when there is one.
        `before_entry`: what checks it before anyone entered, where `since: entry` means nothing."""
        try:
            cond = parse_condition(raw, self.source, at.path)
        except ConditionError as exc:
            raise JourneyError(str(exc)) from exc
        if before_entry is not None:
            for window in _windows(cond):
                if window.kind == "since":
                    raise _At(self.source, window.loc.path).error(
                        f"since: entry is the entry time, and {before_entry} is checked before the "
                        "customer enters: use a window such as within_days instead"
                    )
        self.compile(cond)
        return cond

    def compile(self, cond: Condition) -> None:
        if self.catalog is None:
            return
        try:
            compile_condition(cond, self.catalog, CompileContext(target="duckdb", anchor=ANCHOR))
        except ConditionError as exc:
            raise JourneyError(str(exc)) from exc

    def event(self, raw: Any, at: _At, why: str) -> tuple[Event, dict[str, Any]]:
        """An `event:` at `at.event` that is one event (no window, count or not_followed_by: `why`).
        `event: checkout_started` is short for `event: {type: checkout_started}`."""
        if isinstance(raw, str | list):
            raw = {"type": raw}
        try:
            cond = parse_condition({"event": raw}, self.source, at.path)
        except ConditionError as exc:
            raise JourneyError(str(exc)) from exc
        assert isinstance(cond, Event)
        where = at.key("event")
        if cond.window is not None:
            raise where.key(cond.window.kind).error(f"a window does not apply here: {why}")
        if cond.count is not None:
            raise where.key("count").error(f"a count does not apply here: {why}")
        if cond.not_followed_by is not None:
            raise where.key("not_followed_by").error(
                f"not_followed_by does not apply here: {why}; for 'and no order after it' use a wait, "
                "then a branch or exit_when"
            )
        self.compile(cond)
        return cond, _json(raw)

    # --- entry and goal ---------------------------------------------------------------------------

    def entry(self, raw: Any, at: _At) -> tuple[Entry, dict[str, Any]]:
        raw = _mapping(raw, at, "entry", ENTRY_KEYS)
        triggers = [k for k in TRIGGERS if k in raw]
        if len(triggers) != 1:
            raise at.error(
                f"needs exactly one trigger, one of: {', '.join(TRIGGERS)} (got {', '.join(triggers) or 'none'})"
            )
        kind = triggers[0]
        trigger, trigger_c = self.trigger(kind, raw[kind], at)
        canonical: dict[str, Any] = {kind: trigger_c}
        lookback = DEFAULT_LOOKBACK
        if kind in ("event", "date"):
            if "lookback" in raw:
                lookback = self.duration(raw["lookback"], at.key("lookback"), "lookback", positive=False)
            canonical["lookback"] = _seconds(lookback)
        elif "lookback" in raw:
            raise at.key("lookback").error(
                f"lookback applies to event and date triggers (how late a trigger may be seen); an "
                f"{kind} trigger enters whoever newly matches at a tick"
            )
        re_entry, after_days, canonical["re_entry"] = self.re_entry(
            raw.get("re_entry", "never"), at.key("re_entry")
        )
        exclude = None
        if "exclude" in raw:
            exclude = self.condition(raw["exclude"], at.key("exclude"), before_entry="entry.exclude")
            canonical["exclude"] = _json(raw["exclude"])
        holdout = raw.get("holdout", 0.0)
        if not _number(holdout) or not 0 <= holdout <= MAX_HOLDOUT:
            raise at.key("holdout").error(
                f"must be a share from 0 to {MAX_HOLDOUT}, e.g. 0.1 for 10% kept out (got {_show(holdout)})"
            )
        canonical["holdout"] = float(holdout)
        entry = Entry(
            trigger=trigger,
            lookback=lookback,
            re_entry=re_entry,
            re_entry_after_days=after_days,
            exclude=exclude,
            holdout=float(holdout),
        )
        return entry, canonical

    def trigger(self, kind: str, raw: Any, at: _At) -> tuple[Trigger, Any]:
        if kind == "event":
            event, canonical = self.event(raw, at, "the trigger is one event (each one can start an entry)")
            return EventTrigger(event), canonical
        if kind == "audience":
            return self.audience(raw, at.key("audience"))
        if kind == "condition":
            cond = self.condition(raw, at.key("condition"), before_entry="the entry condition")
            return ConditionTrigger(cond), _json(raw)
        return self.date(raw, at.key("date"))

    def audience(self, raw: Any, at: _At) -> tuple[AudienceTrigger, str]:
        if not isinstance(raw, str) or not _PLAIN.match(raw):
            raise at.error(
                f"must be the name of an audience model, a plain lower-case identifier (got {_show(raw)})"
            )
        if self.catalog is not None and self.catalog.audiences and raw not in self.catalog.audiences:
            raise at.error(_no_named("audience", raw, self.catalog.audiences))
        return AudienceTrigger(raw), raw

    def date(self, raw: Any, at: _At) -> tuple[DateTrigger, dict[str, Any]]:
        raw = _mapping(raw, at, "date", DATE_KEYS)
        if "attribute" not in raw:
            raise at.error(
                "needs an attribute: a timestamp column of dim_customers (e.g. signed_up_at) or birthday"
            )
        attribute = raw["attribute"]
        where = at.key("attribute")
        if not isinstance(attribute, str) or not _PLAIN.match(attribute):
            raise where.error(f"must be a column name of dim_customers or birthday (got {_show(attribute)})")
        if self.catalog is not None:
            self.date_column(attribute, where)
        offset = _whole(raw.get("offset_days", 0), at.key("offset_days"), "offset_days", None)
        return DateTrigger(attribute, offset), {"attribute": attribute, "offset_days": offset}

    def date_column(self, attribute: str, at: _At) -> None:
        assert self.catalog is not None
        columns = self.catalog.attributes
        if attribute == BIRTHDAY:
            if BIRTH_DATE_COLUMN not in columns:
                raise at.error(
                    f"the customer table (dim_customers) has no birth date ({BIRTH_DATE_COLUMN}), so there "
                    "is no birthday to trigger on"
                )
            return
        stamps = [name for name, column in columns.items() if column.type == TIMESTAMP]
        if attribute not in columns:
            raise at.error(_no_named("dim_customers column", attribute, stamps))
        if columns[attribute].type != TIMESTAMP:
            raise at.error(
                f"{attribute} is {columns[attribute].type}, not a date or timestamp (known: {known(stamps)})"
            )

    def re_entry(self, raw: Any, at: _At) -> tuple[str, int | None, Any]:
        if isinstance(raw, str) and raw in RE_ENTRY:
            return raw, None, raw
        if isinstance(raw, Mapping):
            raw = _mapping(raw, at, "re_entry", ("after_days",))
            if "after_days" in raw:
                days = _whole(raw["after_days"], at.key("after_days"), "after_days", 1)
                return "after", days, {"after_days": days}
        raise at.error(f"must be never, always or {{after_days: N}} (got {_show(raw)})")

    def goal(self, raw: Any, at: _At) -> tuple[Goal, dict[str, Any]]:
        raw = _mapping(raw, at, "goal", GOAL_KEYS)
        if "within_days" not in raw:
            raise at.key("within_days").error(
                "missing: a goal counts within whole days of entry, e.g. within_days: 7"
            )
        within = _whole(raw["within_days"], at.key("within_days"), "within_days", 1)
        when_raw = raw.get("when", DEFAULT_GOAL_WHEN)
        when = self.condition(when_raw, at.key("when"))
        return Goal(when, within), {"when": _json(when_raw), "within_days": within}

    # --- durations --------------------------------------------------------------------------------

    def duration(self, raw: Any, at: _At, what: str, *, positive: bool) -> dt.timedelta:
        raw = _mapping(raw, at, what, tuple(DURATION_UNITS))
        if not raw:
            raise at.error(f"{what} needs at least one of {', '.join(DURATION_UNITS)}")
        return self.duration_of(raw, at, what, positive=positive)

    def duration_of(self, raw: Mapping[str, Any], at: _At, what: str, *, positive: bool) -> dt.timedelta:
        """The sum of the unit keys of `raw` (whole numbers >= 0), > 0 when `positive`."""
        seconds = 0
        for unit, factor in DURATION_UNITS.items():
            if unit in raw:
                seconds += factor * _whole(raw[unit], at.key(unit), unit, 0)
        if positive and seconds == 0:
            raise at.error(f"{what} must be longer than zero (got {_show(dict(raw))})")
        return dt.timedelta(seconds=seconds)

    # --- steps ------------------------------------------------------------------------------------

    def steps(self, raw: Any, at: _At) -> tuple[tuple[Step, ...], list[dict[str, Any]]]:
        if not isinstance(raw, list) or not raw:
            raise at.error(
                f"must be a non-empty list of steps, each with an id and one of {', '.join(NODE_KINDS)}"
            )
        self.step_ids = self.ids(raw, at)
        parsed = [self.step(item, i, at.index(i)) for i, item in enumerate(raw)]
        steps = tuple(step for step, _ in parsed)
        _check_graph(steps, [at.index(i) for i in range(len(steps))])
        return steps, [canonical for _, canonical in parsed]

    def ids(self, raw: list[Any], at: _At) -> tuple[str, ...]:
        ids: list[str] = []
        for i, item in enumerate(raw):
            where = at.index(i)
            if not isinstance(item, Mapping):
                raise where.error(f"a step must be a mapping with an id and one of {', '.join(NODE_KINDS)}")
            if "id" not in item:
                raise where.key("id").error("missing: every step needs an id (a plain name, e.g. welcome)")
            step_id = item["id"]
            if not isinstance(step_id, str) or len(step_id) > MAX_NAME_LENGTH or not _KEY_NAME.match(step_id):
                raise where.key("id").error(
                    f"must be lower-case words of letters and digits joined by single underscores, starting "
                    f"with a letter, at most {MAX_NAME_LENGTH} characters (got {_show(step_id)})"
                )
            if step_id == END:
                raise where.key("id").error(f"{END} is where a journey finishes; name the step otherwise")
            if step_id in ids:
                raise where.key("id").error(f"{step_id!r} is already the id of steps[{ids.index(step_id)}]")
            ids.append(step_id)
        return tuple(ids)

    def target(self, raw: Any, at: _At) -> str:
        """A step id or `end`, as a `next`, `else`, `timed_out` or split arm names it."""
        if raw not in (*self.step_ids, END):
            raise at.error(_no_named("step", raw, (*self.step_ids, END)))
        return raw

    def step(self, raw: Mapping[str, Any], i: int, at: _At) -> tuple[Step, dict[str, Any]]:
        step_id = self.step_ids[i]
        at = _At(self.source, f"{at.path} ({step_id})")
        _mapping(raw, at, "a step", STEP_KEYS)
        kinds = [k for k in NODE_KINDS if k in raw]
        if len(kinds) != 1:
            raise at.error(f"needs exactly one of {', '.join(NODE_KINDS)} (got {', '.join(kinds) or 'none'})")
        kind = kinds[0]
        default = self.step_ids[i + 1] if i + 1 < len(self.step_ids) else END
        explicit = self.target(raw["next"], at.key("next")) if "next" in raw else None
        following = explicit or default
        where = at.key(kind)
        canonical: dict[str, Any] = {"id": step_id}
        if kind == "branch":
            action, canonical["branch"] = self.branch(raw[kind], where, explicit, following, at.key("next"))
            return Step(step_id, action, action.otherwise), canonical
        if kind == "split":
            action, canonical["split"] = self.split(raw[kind], where, following)
            return Step(step_id, action, default), canonical
        reader = {
            "send": self.send,
            "wait": lambda r, w: self.wait(r, w, following),
            "tag": self.tag,
            "sync": self.sync,
            "notify": self.notify,
        }[kind]
        action, canonical[kind] = reader(raw[kind], where)
        canonical["next"] = following
        return Step(step_id, action, following), canonical

    # --- node kinds -------------------------------------------------------------------------------

    def wait(self, raw: Any, at: _At, following: str) -> tuple[Wait, dict[str, Any]]:
        raw = _mapping(raw, at, "wait", WAIT_KEYS)
        units = [k for k in DURATION_UNITS if k in raw]
        modes = [
            m
            for m, present in (
                ("a duration", units),
                ("until_time", "until_time" in raw),
                ("event", "event" in raw),
            )
            if present
        ]
        if len(modes) != 1:
            raise at.error(
                f"needs exactly one of: a duration ({', '.join(DURATION_UNITS)}), until_time or event "
                f"(got {', '.join(modes) or 'none'})"
            )
        if "event" not in raw:
            for key in ("timeout", "timed_out"):
                if key in raw:
                    raise at.key(key).error(f"{key} belongs to a wait for an event")
        if units:
            duration = self.duration_of(raw, at, "a wait", positive=True)
            return Wait(duration=duration), _seconds(duration)
        if "until_time" in raw:
            until = _time_of_day(raw["until_time"], at.key("until_time"))
            return Wait(until_time=until), {"until_time": until.strftime("%H:%M")}
        event, event_c = self.event(
            raw["event"], at, "the wait ends at one event after the customer reaches it"
        )
        if "timeout" not in raw:
            raise at.key("timeout").error(
                "missing: a wait for an event needs a timeout, e.g. timeout: {days: 3}"
            )
        timeout = self.duration(raw["timeout"], at.key("timeout"), "timeout", positive=True)
        timed_out = self.target(raw["timed_out"], at.key("timed_out")) if "timed_out" in raw else following
        wait = Wait(event=event, timeout=timeout, timed_out=timed_out)
        return wait, {"event": event_c, "timeout": _seconds(timeout), "timed_out": timed_out}

    def branch(
        self, raw: Any, at: _At, explicit_next: str | None, following: str, next_at: _At
    ) -> tuple[Branch, list[dict[str, Any]]]:
        if not isinstance(raw, list) or not raw:
            raise at.error(
                "must be a non-empty list of arms {when: <condition>, next: <step>}, optionally ending with {else: <step>}"
            )
        arms: list[BranchArm] = []
        canonical: list[dict[str, Any]] = []
        otherwise = None
        for i, item in enumerate(raw):
            where = at.index(i)
            if isinstance(item, Mapping) and "else" in item:
                _mapping(item, where, "an else arm", ("else",))
                if i != len(raw) - 1:
                    raise where.error("the else arm goes last (arms are tried in order; else takes the rest)")
                if explicit_next is not None:
                    raise next_at.error("a branch with an else arm takes no next: else is where the rest go")
                otherwise = self.target(item["else"], where.key("else"))
                continue
            item = _mapping(item, where, "a branch arm", ("when", "next"))
            for key in ("when", "next"):
                if key not in item:
                    raise where.key(key).error("missing: a branch arm is {when: <condition>, next: <step>}")
            when = self.condition(item["when"], where.key("when"))
            arms.append(BranchArm(when, self.target(item["next"], where.key("next"))))
            canonical.append({"when": _json(item["when"]), "next": arms[-1].next})
        if not arms:
            raise at.error("needs at least one arm {when: <condition>, next: <step>} before the else arm")
        otherwise = otherwise or following
        canonical.append({"else": otherwise})
        return Branch(tuple(arms), otherwise), canonical

    def split(self, raw: Any, at: _At, following: str) -> tuple[Split, dict[str, Any]]:
        if not isinstance(raw, Mapping) or len(raw) < 2:
            raise at.error(f"must map two or more arm names to {{weight, next}} (got {_show(raw)})")
        arms: list[SplitArm] = []
        for name, spec in raw.items():
            where = at.key(name)
            if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH or not _ARM.match(name):
                raise where.error(
                    f"an arm name is a plain name of letters, digits and underscores, starting with a letter, "
                    f"at most {MAX_NAME_LENGTH} characters (got {_show(name)}; quote names YAML reads as "
                    "numbers or true/false)"
                )
            spec = _mapping(spec, where, "a split arm", SPLIT_ARM_KEYS)
            if "weight" not in spec:
                raise where.key("weight").error("missing: each arm needs a weight (the shares add up to 1)")
            weight = spec["weight"]
            if not _number(weight) or weight <= 0:
                raise where.key("weight").error(f"must be a number > 0 (got {_show(weight)})")
            target = self.target(spec["next"], where.key("next")) if "next" in spec else following
            arms.append(SplitArm(name, float(weight), target))
        total = math.fsum(arm.weight for arm in arms)
        if abs(total - 1.0) > WEIGHT_TOLERANCE:
            raise at.error(f"the weights add up to {total:g}, not 1")
        return Split(tuple(arms)), {a.name: {"weight": a.weight, "next": a.next} for a in arms}

    def send(self, raw: Any, at: _At) -> tuple[Send, dict[str, Any]]:
        raw = _mapping(raw, at, "send", SEND_KEYS)
        destination = self.destination(raw, at)
        channel = raw.get("channel")
        if channel not in CHANNELS:
            raise at.key("channel").error(f"must be one of {', '.join(CHANNELS)} (got {_show(channel)})")
        fields = self.fields(raw, at)
        content = self.content(raw, at, channel)
        cap = raw.get("frequency_cap", DEFAULT_FREQUENCY_CAP)
        if cap is not None and (not isinstance(cap, str) or not _PLAIN.match(cap)):
            raise at.key("frequency_cap").error(
                f"must be a cap class of the activation policies (e.g. marketing, transactional) or null "
                f"for no cap (got {_show(cap)})"
            )
        canonical = {
            "destination": destination,
            "channel": channel,
            "fields": fields,
            "content": content,
            "frequency_cap": cap,
        }
        campaign = None
        if "campaign" in raw:
            campaign = _campaign(raw["campaign"], at.key("campaign"))
            canonical["campaign"] = campaign
        launch, launch_canonical = self.launch(raw, at)
        canonical |= launch_canonical
        send = Send(
            destination,
            channel,
            dict(fields),
            dict(content),
            frequency_cap=cap,
            campaign=campaign,
            launch=launch,
        )
        return send, canonical

    def launch(self, raw: Mapping[str, Any], at: _At) -> tuple[LaunchSpec | None, dict[str, Any]]:
        """A send's `pilot:` and `approval_above:`, read by the segment activations' own parser
        (activation.launches.spec: one rule for both), and their canonical form (part of the version)."""
        if not any(k in raw for k in LAUNCH_KEYS):
            return None, {}
        try:
            spec = parse_launch(
                f"{at.source}: {at.path}", "message", raw.get("pilot"), {}, [], raw.get("approval_above")
            )
        except ConfigError as exc:
            raise JourneyError(str(exc)) from None
        canonical: dict[str, Any] = {}
        if spec is not None and spec.pilot is not None:
            pilot = spec.pilot
            gate: dict[str, dict[str, float]] = {}
            for rule in pilot.gate:
                gate.setdefault(rule.metric, {})[rule.direction] = rule.threshold
            canonical["pilot"] = {
                "share": pilot.share,
                "wait": _minutes(pilot.wait),
                "min_delivered": pilot.min_delivered,
                "gate": gate,
            }
        if spec is not None and spec.approval_above is not None:
            canonical["approval_above"] = spec.approval_above
        return spec, canonical

    def content(self, raw: Mapping[str, Any], at: _At, channel: str) -> dict[str, Any]:
        """`template: NAME` (a folder of the templates directory) or inline parts for the channel,
        written in the send or in a `content:` mapping (the same thing)."""
        flat = {k: raw[k] for k in CONTENT_KEYS if k in raw}
        if "content" in raw:
            if flat:
                raise at.key("content").error(
                    f"write the content in `content:` or in the send ({', '.join(flat)}), not both"
                )
            at = at.key("content")
            flat = dict(_mapping(raw["content"], at, "content", CONTENT_KEYS))
        required, one_of, allowed = INLINE_PARTS[channel]
        parts = [k for k in flat if k not in ("template", "variables")]
        content: dict[str, Any] = {}
        if "template" in flat:
            if parts:
                raise at.key(parts[0]).error(
                    "a send has a template or inline text, not both (the template's files are the content)"
                )
            content["template"] = self.template(flat["template"], at.key("template"))
        else:
            if not parts:
                raise at.error(
                    f"needs content: template: NAME (a folder of the templates directory) or inline "
                    f"{channel} content ({INLINE_HINT[channel]})"
                )
            for key in parts:
                if key not in allowed:
                    raise at.key(key).error(
                        f"{channel} content is {', '.join(allowed)}; {key} does not apply"
                    )
                content[key] = _text(flat[key], at.key(key), key)
            for key in required:
                if key not in content:
                    raise at.key(key).error(
                        f"missing: inline {channel} content needs {' and '.join(required)}"
                    )
            if one_of and not any(k in content for k in one_of):
                raise at.error(
                    f"inline {channel} content needs {' or '.join(one_of)} besides {', '.join(required)}"
                )
        variables = flat.get("variables", {})
        if not isinstance(variables, Mapping):
            raise at.key("variables").error(f"must be a mapping of name: value (got {_show(variables)})")
        for name, value in variables.items():
            if not isinstance(name, str) or not _PLAIN.match(name):
                raise at.key("variables").key(name).error("a variable name is a plain lower-case identifier")
            if not isinstance(value, str | int | float | bool) or (
                isinstance(value, float) and not math.isfinite(value)
            ):
                raise (
                    at.key("variables")
                    .key(name)
                    .error(f"must be text, a number or true/false (got {_show(value)})")
                )
        if variables:
            content["variables"] = _json(variables)
        return content

    def template(self, raw: Any, at: _At) -> str:
        if not isinstance(raw, str) or not _TEMPLATE.match(raw):
            raise at.error(
                f"must be the name of a template folder (letters, digits, _ and -; got {_show(raw)})"
            )
        if self.templates_dir is not None and not (self.templates_dir / raw).is_dir():
            folders = (
                sorted(p.name for p in self.templates_dir.iterdir() if p.is_dir())
                if self.templates_dir.is_dir()
                else []
            )
            raise at.error(
                f"no template folder {raw!r} in {self.templates_dir} (known: {known(folders) or 'none'})"
            )
        return raw

    def destination(self, raw: Mapping[str, Any], at: _At) -> str:
        if "destination" not in raw:
            raise at.key("destination").error("missing: the name of a destination in config/activation.yml")
        name = raw["destination"]
        where = at.key("destination")
        if not isinstance(name, str) or not name.strip():
            raise where.error(f"must be the name of a destination (got {_show(name)})")
        if self.destinations is not None and name not in self.destinations:
            raise where.error(_no_named("destination", name, self.destinations))
        return name

    def fields(self, raw: Mapping[str, Any], at: _At) -> dict[str, str]:
        where = at.key("fields")
        fields = raw.get("fields")
        if not isinstance(fields, Mapping) or not fields:
            raise where.error(
                f"needs a non-empty mapping of destination field: dim_customers column, e.g. {{email: email}} "
                f"(got {_show(fields)})"
            )
        out: dict[str, str] = {}
        for field, column in fields.items():
            if not isinstance(field, str) or not field.strip():
                raise where.error(f"a destination field name is non-empty text (got {_show(field)})")
            if not isinstance(column, str) or not column.strip():
                raise where.key(field).error(f"must be a dim_customers column (got {_show(column)})")
            if self.catalog is not None and column not in self.catalog.attributes:
                raise where.key(field).error(
                    _no_named("dim_customers column", column, self.catalog.attributes)
                )
            out[field] = column
        return out

    def tag(self, raw: Any, at: _At) -> tuple[TagAction, dict[str, str]]:
        if not isinstance(raw, Mapping) or len(raw) != 1 or next(iter(raw)) not in ("add", "remove"):
            raise at.error(f"must be {{add: <tag>}} or {{remove: <tag>}} (got {_show(raw)})")
        ((op, name),) = raw.items()
        if not isinstance(name, str) or not _PLAIN.match(name):
            raise at.key(op).error(f"a tag name is a plain lower-case identifier (got {_show(name)})")
        return TagAction(name, add=op == "add"), {op: name}

    def sync(self, raw: Any, at: _At) -> tuple[SyncAction, dict[str, Any]]:
        raw = _mapping(raw, at, "sync", SYNC_KEYS)
        destination = self.destination(raw, at)
        fields = self.fields(raw, at)
        return SyncAction(destination, dict(fields)), {"destination": destination, "fields": fields}

    def notify(self, raw: Any, at: _At) -> tuple[Notify, dict[str, Any]]:
        raw = _mapping(raw, at, "notify", NOTIFY_KEYS)
        destination = self.destination(raw, at) if "destination" in raw else None
        if "message" not in raw:
            raise at.key("message").error(
                "missing: the text staff receive (never personal data: the customer id is sent)"
            )
        message = _text(raw["message"], at.key("message"), "message")
        route = raw.get("route", DEFAULT_ROUTE)
        if route not in ROUTES:
            raise at.key("route").error(f"must be one of {', '.join(ROUTES)} (got {_show(route)})")
        notify = Notify(destination, message, route)
        canonical = {"message": message, "route": route}
        if destination is not None:
            canonical["destination"] = destination
        return notify, canonical


def _seconds(duration: dt.timedelta) -> dict[str, int]:
    return {"seconds": int(duration.total_seconds())}


def _time_of_day(raw: Any, at: _At) -> dt.time:
    if isinstance(raw, int) and not isinstance(raw, bool):
        hours, minutes = divmod(raw, 60)
        meant = f"{hours:02d}:{minutes:02d}" if 0 <= raw < 24 * 60 else "09:00"
        raise at.error(
            f'write the time in quotes: until_time: "{meant}" (YAML reads a time such as {meant} without '
            f"quotes as a number of minutes; got {raw})"
        )
    match = _TIME.match(raw) if isinstance(raw, str) else None
    if match is None:
        raise at.error(f'must be a time of day "HH:MM" from "00:00" to "23:59" (got {_show(raw)})')
    return dt.time(int(match.group(1)), int(match.group(2)))


def _campaign(raw: Any, at: _At) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise at.error(f"must be non-empty text (got {_show(raw)})")
    if len(raw) > MAX_TEXT_NAME:
        raise at.error(f"is longer than {MAX_TEXT_NAME} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in raw):
        raise at.error(f"contains a control character (newline, tab, ...): {_show(raw)}")
    return raw


# --- the graph ------------------------------------------------------------------------------------


def _check_graph(steps: tuple[Step, ...], places: list[_At]) -> None:
    """Every step reachable from the first; no loop without a wait (it would go round in one tick)."""
    index = {step.id: i for i, step in enumerate(steps)}
    reached = {steps[0].id}
    todo = [steps[0].id]
    while todo:
        for successor in steps[index[todo.pop()]].successors():
            if successor != END and successor not in reached:
                reached.add(successor)
                todo.append(successor)
    for i, step in enumerate(steps):
        if step.id not in reached:
            raise _step_at(places[i], step).error(
                f"not reachable from the first step {steps[0].id!r}: no next, else, timed_out or split arm "
                "leads here (point a step at it, or remove it)"
            )
    loop = _loop_without_wait(steps, index)
    if loop:
        first = min(loop, key=index.__getitem__)
        start = loop.index(first)
        path = [*loop[start:], *loop[:start], first]
        raise _step_at(places[index[first]], steps[index[first]]).error(
            f"the loop {' -> '.join(path)} has no wait step, so a customer would go round it without end "
            "within one tick: put a wait in the loop"
        )


def _step_at(at: _At, step: Step) -> _At:
    return _At(at.source, f"{at.path} ({step.id})")


def _loop_without_wait(steps: tuple[Step, ...], index: dict[str, int]) -> list[str] | None:
    """A cycle through steps none of which is a wait (as the ids along it), or None."""
    active = {s.id for s in steps if not isinstance(s.action, Wait)}
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for successor in dict.fromkeys(steps[index[node]].successors()):
            if successor not in active:
                continue
            if state.get(successor) == 1:
                return path[path.index(successor) :]
            if successor not in state:
                found = visit(successor)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for step in steps:
        if step.id in active and step.id not in state:
            found = visit(step.id)
            if found:
                return found
    return None


# --- describe ---------------------------------------------------------------------------------------


def _describe(step: Step, canonical: Any) -> str:
    a = step.action
    if isinstance(a, Send):
        via = f" via {a.destination}" if a.destination != a.channel else ""
        what = f"template {a.content['template']}" if "template" in a.content else "inline"
        staged = ""
        if a.launch is not None and a.launch.pilot is not None:
            staged += f", pilot {a.launch.pilot.share:.0%} judged after {_human(a.launch.pilot.wait)}"
        if a.launch is not None and a.launch.approval_above is not None:
            staged += f", approval above {a.launch.approval_above}"
        return f"send {a.channel}{via} ({what}{staged}) -> {step.next}"
    if isinstance(a, Wait):
        if a.duration is not None:
            return f"wait {_human(a.duration)} -> {step.next}"
        if a.until_time is not None:
            return f"wait until {a.until_time:%H:%M} (customer's time zone) -> {step.next}"
        assert isinstance(a.event, Event) and a.timeout is not None
        return (
            f"wait for {'/'.join(a.event.types)} -> {step.next}; "
            f"after {_human(a.timeout)} without -> {a.timed_out}"
        )
    if isinstance(a, Branch):
        arms = canonical.get("branch", []) if isinstance(canonical, Mapping) else []
        conds = [_flow(arm["when"]) for arm in arms if isinstance(arm, Mapping) and "when" in arm]
        shown = conds if len(conds) == len(a.arms) else [f"arm {i + 1}" for i in range(len(a.arms))]
        parts = [f"if {c} -> {arm.next}" for c, arm in zip(shown, a.arms, strict=True)]
        return f"branch: {'; '.join(parts)}; else -> {a.otherwise}"
    if isinstance(a, Split):
        return "split " + ", ".join(f"{arm.name} {arm.weight:.0%} -> {arm.next}" for arm in a.arms)
    if isinstance(a, TagAction):
        return f"{'add' if a.add else 'remove'} tag {a.tag} -> {step.next}"
    if isinstance(a, SyncAction):
        return f"sync to {a.destination} ({', '.join(a.fields)}) -> {step.next}"
    if isinstance(a, Notify):
        where = f"to {a.destination}" if a.destination else f"route {a.route}"
        return f"notify staff ({where}) -> {step.next}"
    raise AssertionError(type(a))


def _minutes(duration: dt.timedelta) -> str:
    """A duration as the pilot's `wait` text in minutes (`90m`): canonical, and parsed back the same."""
    return f"{duration.total_seconds() / 60:.6f}".rstrip("0").rstrip(".") + "m"


def _human(duration: dt.timedelta) -> str:
    seconds = int(duration.total_seconds())
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}{'s' if count != 1 else ''}")
    return " ".join(parts) or "0 seconds"


def _flow(value: Any, limit: int = 60) -> str:
    """A condition as one line of YAML flow style, shortened to `limit` characters."""
    text = _flow_text(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _flow_text(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_flow_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow_text(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


# --- YAML -----------------------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice in one mapping."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
        except TypeError:  # an unhashable key: construct_mapping says so
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping",
                node.start_mark,
                f"key {key!r} is written twice",
                key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


__all__ = ["describe_journey", "load_journeys", "parse_journey", "read_yaml"]
