"""Generate the lead scoring models from dbt_project/lead_scoring.yml (checked in, like the tags).

    tideline leads build     # regenerate after changing the rules
    tideline leads check     # exit 1, naming the files, while a generated model is stale
    (`tideline run` regenerates them too: tideline/dbt_manifest.generate_models)

Four models in models/marts/leads/ come from the file; the rest of the folder is hand-written
SQL that reads them, so the scoring arithmetic (decay, caps, stages) lives in one place:
- lead_score_rules: one row per rule (group, kind, points, cap, half-life, window, count, reason);
- lead_stages: the score stages and their thresholds, then the CRM stages;
- lead_score_fit: one row per customer and fit rule whose condition holds on the as-of date;
- lead_score_occurrences: one row per event or message that satisfies a behaviour rule (before
  the as-of cutoff), whatever its age: decay and windows are applied per score day downstream.
Conditions compile with the dbt target of the condition compiler (literals through dbt_literal,
identifiers from the Catalog), so the models run on DuckDB and PostgreSQL alike.
tests/unit/test_lead_rules.py regenerates them and fails on any difference, naming the command.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from activation.conditions import (
    Catalog,
    CompileContext,
    compile_condition,
    compile_event_filter,
    compile_message_filter,
)
from activation.conditions.literals import dbt_literal
from activation.conditions.nodes import Event, Message

from .rules import CRM_STAGES, PROJECT_DIR, RULES_NAME, STAGES, LeadScoring, Rule, default_rules_file, load

MODELS_DIR = Path("models/marts/leads")
BUILD_COMMAND = "tideline leads build"
GENERATED = ("lead_score_rules", "lead_stages", "lead_score_fit", "lead_score_occurrences")
# compiled conditions are one line each (docs/audiences.md, How it compiles), with the compiler's aliases
_NOQA = "-- noqa: disable=AL01,AL09,LT05,LT14"


def _header(what: str) -> str:
    return (
        f"-- {what}\n"
        f"-- Generated from dbt_project/{RULES_NAME}: do not edit. Change the rules there, then run\n"
        f"-- `{BUILD_COMMAND}` (make test fails while this file is stale). docs/leads.md explains it.\n"
    )


def _num(value: float) -> str:
    """A number as SQL text: whole numbers without a fraction, others as written."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render(scoring: LeadScoring, catalog: Catalog | None = None) -> dict[str, str]:
    """model name -> SQL text of each generated model (compiling every rule's condition)."""
    catalog = catalog or Catalog.default()
    ctx = CompileContext(target="dbt")
    return {
        "lead_score_rules": _rules_model(scoring.rules),
        "lead_stages": _stages_model(scoring),
        "lead_score_fit": _fit_model([r for r in scoring.rules if r.kind == "fit"], catalog, ctx),
        "lead_score_occurrences": _occurrences_model(
            [r for r in scoring.rules if r.kind == "behaviour"], catalog, ctx
        ),
    }


def _rules_model(rules: Sequence[Rule]) -> str:
    rows = []
    for order, rule in enumerate(rules, start=1):
        half_life = _num(rule.group.half_life_days) if rule.group.half_life_days else "null"
        window = str(rule.window_days) if rule.window_days is not None else "null"
        rows.append(
            "select\n"
            f"    cast({dbt_literal(rule.name)} as {{{{ dbt.type_string() }}}}) as rule,\n"
            f"    {order} as rule_order,\n"
            f"    cast({dbt_literal(rule.group.name)} as {{{{ dbt.type_string() }}}}) as rule_group,\n"
            f"    cast({dbt_literal(rule.kind)} as {{{{ dbt.type_string() }}}}) as kind,\n"
            f"    cast({_num(rule.points)} as {{{{ type_double() }}}}) as points,\n"
            f"    cast({_num(rule.group.cap)} as {{{{ type_double() }}}}) as group_cap,\n"
            f"    cast({half_life} as integer) as half_life_days,\n"
            f"    cast({window} as integer) as window_days,\n"
            f"    {rule.min_count} as min_count,\n"
            f"    cast({dbt_literal(rule.reason)} as {{{{ dbt.type_string() }}}}) as reason,\n"
            f"    cast({dbt_literal(rule.description)} as {{{{ dbt.type_string() }}}}) as description"
        )
    return _header("lead_score_rules: one row per lead scoring rule, in file order.") + (
        "\nunion all\n".join(rows) + "\n"
    )


def _stages_model(scoring: LeadScoring) -> str:
    rows = [
        "select cast('raw_lead' as {{ dbt.type_string() }}) as lead_stage, 1 as stage_order, "
        "cast(null as {{ type_double() }}) as min_score, cast('score' as {{ dbt.type_string() }}) as source"
    ]
    for order, name in enumerate(STAGES, start=2):
        rows.append(
            f"select cast({dbt_literal(name)} as {{{{ dbt.type_string() }}}}), {order}, "
            f"cast({_num(scoring.stages[name])} as {{{{ type_double() }}}}), cast('score' as {{{{ dbt.type_string() }}}})"
        )
    for order, name in enumerate(CRM_STAGES, start=len(STAGES) + 2):
        rows.append(
            f"select cast({dbt_literal(name)} as {{{{ dbt.type_string() }}}}), {order}, cast(null as {{{{ type_double() }}}}), "
            "cast('crm' as {{ dbt.type_string() }})"
        )
    return _header(
        "lead_stages: the stages of a lead, lowest first: the score stages with the total score each "
        "needs, then the CRM stages (crm/lead_status)."
    ) + ("\nunion all\n".join(rows) + "\n")


def _fit_model(rules: Sequence[Rule], catalog: Catalog, ctx: CompileContext) -> str:
    header = _header(
        "lead_score_fit: one row per customer and fit rule whose condition holds on the as-of date."
    )
    if not rules:
        return (
            header
            + "select cast(null as {{ dbt.type_string() }}) as customer_id, cast(null as {{ dbt.type_string() }}) as rule\nwhere false\n"
        )
    blocks = []
    for rule in rules:
        condition, _ = compile_condition(rule.where, catalog, ctx)
        blocks.append(
            f"-- {rule.name}: {rule.description}\n"
            f"{_NOQA}\n"
            f"select c.customer_id, cast({dbt_literal(rule.name)} as {{{{ dbt.type_string() }}}}) as rule\n"
            "from {{ ref('dim_customers') }} as c\n"
            f"where {condition}\n"
            "-- noqa: enable=all"
        )
    return header + "\nunion all\n".join(blocks) + "\n"


def _occurrences_model(rules: Sequence[Rule], catalog: Catalog, ctx: CompileContext) -> str:
    header = _header(
        "lead_score_occurrences: one row per event or message satisfying a behaviour rule, before the "
        "as-of cutoff."
    )
    if not rules:
        return header + (
            "select cast(null as {{ dbt.type_string() }}) as customer_id, cast(null as {{ dbt.type_string() }}) as rule,\n"
            "    cast(null as timestamp) as occurred_at, cast(null as {{ dbt.type_string() }}) as occurrence_id\nwhere false\n"
        )
    blocks = []
    for rule in rules:
        where = rule.where
        name = dbt_literal(rule.name)
        if isinstance(where, Event):
            row, _ = compile_event_filter(where, catalog, ctx, "e")
            relation = "{{ ref('int_events_stitched') }}"
            columns = f"e.customer_id, cast({name} as {{{{ dbt.type_string() }}}}) as rule, e.occurred_at, e.event_id as occurrence_id"
            when = "e.occurred_at"
            alias = "e"
        else:
            assert isinstance(where, Message)
            relation_sql, row, _ = compile_message_filter(where, catalog, ctx, "x")
            relation = relation_sql
            when = "x.sent_at" if where.action == "sent" else "x.occurred_at"
            key = "x.message_key" if where.action == "sent" else "x.event_id"
            columns = f"x.customer_id, cast({name} as {{{{ dbt.type_string() }}}}) as rule, {when} as occurred_at, {key} as occurrence_id"
            alias = "x"
        blocks.append(
            f"-- {rule.name}: {rule.description}\n"
            f"{_NOQA}\n"
            f"select {columns}\n"
            f"from {relation} as {alias}\n"
            f"where {alias}.customer_id is not null and {when} < {{{{ as_of_cutoff() }}}} and {row}\n"
            "-- noqa: enable=all"
        )
    return header + "\nunion all\n".join(blocks) + "\n"


def generate(project_dir: Path | None = None, rules_file: Path | None = None) -> dict[Path, str]:
    """path -> text of every generated model of the project (the rules file checked and compiled)."""
    project = project_dir or PROJECT_DIR
    scoring = load(rules_file or default_rules_file(project))
    return {project / MODELS_DIR / f"{name}.sql": text for name, text in render(scoring).items()}


def build(project_dir: Path | None = None, rules_file: Path | None = None) -> list[Path]:
    """Write the generated models that differ from what is on disk; the paths written."""
    written = []
    for path, text in generate(project_dir, rules_file).items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


def stale(project_dir: Path | None = None, rules_file: Path | None = None) -> list[Path]:
    """The generated models whose checked-in text differs from what the rules file gives."""
    return [
        path
        for path, text in generate(project_dir, rules_file).items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]


__all__ = ["BUILD_COMMAND", "GENERATED", "MODELS_DIR", "build", "generate", "render", "stale"]
