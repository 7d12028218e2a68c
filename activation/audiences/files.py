"""Audience files: one YAML file per audience, `dbt_project/audiences/<name>.yml`, loaded and checked.

    description: Carts left in the last 7 days with no order since; email consent.
    owner: crm-marketing
    where: {all: [{event: {type: add_to_cart, within_days: 7, not_followed_by: order}}, {consent: email}]}
    fields: [email, first_name]          # columns of dim_customers its destinations need
    activation: {...}                    # optional: the same block segment models carry in `meta`

The name is the file stem (it becomes the dbt model's name, so a plain lower-case identifier).
Everything is checked here, before anything is generated: the keys, the condition (parsed and
compiled against the catalog, whose audiences are the other audience files plus the hand-written
segment models), the fields (documented columns of dim_customers), and the activation block
(through `binding_from_meta`, the same reader the manifest goes through, and its fields must be
among the selected columns). Every error is a ConditionError naming the file and the path in it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from activation.conditions import Catalog, CompileContext, ConditionError, compile_condition, parse_condition
from activation.conditions.catalog import safe_identifier
from activation.conditions.errors import known, unknown_name
from activation.conditions.literals import JINJA_OPENERS
from activation.conditions.nodes import All, AnyOf, Audience, Condition, Not

AUDIENCES_DIR = Path("audiences")  # below the dbt project
SEGMENTS_DIR = Path("models") / "marts" / "segments"
KEYS = ("description", "owner", "where", "fields", "activation")
REQUIRED = ("description", "owner", "where")


@dataclass(frozen=True)
class AudienceFile:
    """One checked audience file. `source` is the path as errors and headers name it (relative to
    the dbt project's parent, e.g. dbt_project/audiences/cart_rescue.yml)."""

    name: str
    source: str
    description: str
    owner: str
    where: Condition
    where_raw: Any
    fields: tuple[str, ...]
    activation: Mapping[str, Any] | None


def segment_models(project_dir: Path) -> list[str]:
    """The hand-written segment models (SQL files under models/marts/segments)."""
    return sorted(p.stem for p in (project_dir / SEGMENTS_DIR).glob("*.sql"))


def audience_paths(project_dir: Path) -> list[Path]:
    return sorted((project_dir / AUDIENCES_DIR).glob("*.yml"))


def source_name(path: Path, project_dir: Path) -> str:
    """`dbt_project/audiences/x.yml` for a file of the project; else the path as given."""
    try:
        return str(path.resolve().relative_to(project_dir.resolve().parent))
    except ValueError:
        return str(path)


def audience_catalog(project_dir: Path, extra: Iterable[str] = ()) -> Catalog:
    """The catalog with every audience a condition may name: the audience files and the segments."""
    names = {p.stem for p in audience_paths(project_dir)} | set(segment_models(project_dir)) | set(extra)
    return Catalog.default(audiences=sorted(n for n in names if _plain(n)))


def load_audiences(project_dir: Path) -> list[AudienceFile]:
    """Every audience file of the project, checked, sorted by name; a reference cycle is an error."""
    project_dir = Path(project_dir)
    catalog = audience_catalog(project_dir)
    audiences = [load_audience(p, project_dir, catalog) for p in audience_paths(project_dir)]
    _check_cycles(audiences)
    return audiences


def load_audience(path: Path, project_dir: Path, catalog: Catalog | None = None) -> AudienceFile:
    """One audience file, checked (see the module docstring); ConditionError naming file and path."""
    path, project_dir = Path(path), Path(project_dir)
    source = source_name(path, project_dir)
    name = path.stem
    if not _plain(name):
        raise ConditionError(
            source, "(file name)", f"{name!r} is not a usable model name: rename the file to lower-case "
            "letters, digits and underscores, starting with a letter (e.g. cart_rescue.yml)"
        )  # fmt: skip
    if name in segment_models(project_dir):
        raise ConditionError(
            source, "(file name)", f"a hand-written segment model {name!r} exists "
            f"({SEGMENTS_DIR / (name + '.sql')}): remove it or rename this file"
        )  # fmt: skip
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConditionError(source, "(top)", f"not valid YAML: {exc}") from None
    if not isinstance(raw, Mapping):
        raise ConditionError(source, "(top)", f"must be a mapping with keys {known(KEYS)}")
    for key in raw:
        if key not in KEYS:
            raise ConditionError(source, str(key), unknown_name("key", key, KEYS))
    for key in REQUIRED:
        if key not in raw:
            raise ConditionError(source, key, f"missing: an audience file needs {', '.join(REQUIRED)}")
    for key in ("description", "owner"):
        if not isinstance(raw[key], str) or not raw[key].strip():
            raise ConditionError(source, key, f"must be non-empty text (got {raw[key]!r})")
    _no_jinja(raw, source, "")
    catalog = catalog or audience_catalog(project_dir)
    where = parse_condition(raw["where"], source=source, path="where")
    if name in _audiences_named(where):
        raise ConditionError(source, "where", f"audience {name!r} cannot refer to itself")
    compile_condition(where, catalog, CompileContext(target="dbt"))  # names and types, now
    fields = _fields(raw.get("fields", []), source, catalog)
    activation = raw.get("activation")
    if activation is not None:
        _check_activation(activation, name, source, fields)
    return AudienceFile(
        name=name,
        source=source,
        description=" ".join(raw["description"].split()),
        owner=raw["owner"].strip(),
        where=where,
        where_raw=raw["where"],
        fields=fields,
        activation=activation,
    )


def _plain(name: str) -> bool:
    try:
        safe_identifier(name)
    except ValueError:
        return False
    return True


def _no_jinja(value: Any, source: str, path: str) -> None:
    """dbt renders the generated YAML and SQL as Jinja: no text in the file may open a Jinja tag."""
    if isinstance(value, str):
        opener = next((o for o in JINJA_OPENERS if o in value), None)
        if opener:
            raise ConditionError(
                source, path or "(top)", f"text containing {opener!r} cannot go into a dbt model or its "
                "YAML (dbt would read it as Jinja); put templated content in config/templates/<name>/"
            )  # fmt: skip
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _no_jinja(key, source, path)
            _no_jinja(item, source, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _no_jinja(item, source, f"{path}[{i}]")


def _fields(raw: Any, source: str, catalog: Catalog) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(f, str) for f in raw):
        raise ConditionError(source, "fields", f"must be a list of dim_customers columns (got {raw!r})")
    seen: list[str] = []
    for i, name in enumerate(raw):
        if name == "customer_id":
            raise ConditionError(source, f"fields[{i}]", "customer_id is always selected: leave it out")
        if name not in catalog.attributes:
            raise ConditionError(
                source, f"fields[{i}]", unknown_name("dim_customers column", name, catalog.attributes)
            )
        if name in seen:
            raise ConditionError(source, f"fields[{i}]", f"{name} is listed twice")
        seen.append(name)
    return tuple(seen)


def _check_activation(spec: Any, name: str, source: str, fields: tuple[str, ...]) -> None:
    """The block as bindings_from_manifest will read it, and its fields among the selected columns."""
    from activation.config import binding_from_meta

    if (
        not isinstance(spec, Mapping)
        or not isinstance(spec.get("destinations"), list)
        or not spec["destinations"]
    ):
        raise ConditionError(
            source, "activation", "must be a mapping with a non-empty `destinations` list "
            "(the block segment models carry in meta.activation; docs/activation.md)"
        )  # fmt: skip
    for i, d in enumerate(spec["destinations"]):
        if not isinstance(d, Mapping) or not isinstance(d.get("name"), str):
            raise ConditionError(source, f"activation.destinations[{i}]", "needs a `name` (a destination)")
    try:
        bindings = binding_from_meta(name, f"marts.{name}", dict(spec))
    except (TypeError, ValueError, AttributeError) as exc:
        raise ConditionError(source, "activation", f"cannot be read: {exc}") from None
    selected = {"customer_id", *fields}
    for i, binding in enumerate(bindings):
        at = f"activation.destinations[{i}].fields"
        if not binding.fields:
            raise ConditionError(source, at, "no fields mapped: map destination fields to selected columns")
        for target, column in binding.fields.items():
            if column not in selected:
                raise ConditionError(
                    source, f"{at}.{target}", f"{column!r} is not selected: add it to `fields` "
                    f"(selected: {', '.join(sorted(selected))})"
                )  # fmt: skip


def _audiences_named(cond: Condition) -> set[str]:
    if isinstance(cond, All | AnyOf):
        return set().union(*(_audiences_named(c) for c in cond.items))
    if isinstance(cond, Not):
        return _audiences_named(cond.item)
    return {cond.name} if isinstance(cond, Audience) else set()


def references(audience: AudienceFile) -> set[str]:
    """The audiences this one's condition names."""
    return _audiences_named(audience.where)


def _check_cycles(audiences: list[AudienceFile]) -> None:
    by_name = {a.name: a for a in audiences}
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2 or name not in by_name:
            return
        if state.get(name) == 1:
            cycle = " -> ".join([*trail[trail.index(name) :], name])
            raise ConditionError(
                by_name[name].source, "where", f"audiences refer to each other in a cycle: {cycle}"
            )
        state[name] = 1
        for ref in sorted(references(by_name[name])):
            visit(ref, [*trail, name])
        state[name] = 2

    for name in sorted(by_name):
        visit(name, [])
