"""Lead scoring rules: the checked-in generated models are current, and every mistake in the rules
file is an error naming the file, the rule's path and the field (as the audience and tag parsers do)."""

from __future__ import annotations

import copy
import importlib
import shutil
from pathlib import Path

import pytest
import yaml

from activation import leads
from activation.conditions import ConditionError
from activation.leads.generate import GENERATED, MODELS_DIR
from tideline.cli import main

PROJECT = Path(__file__).resolve().parents[2] / "dbt_project"
RULES = yaml.safe_load((PROJECT / "lead_scoring.yml").read_text())
AT = {r["name"]: f"rules[{i}]" for i, r in enumerate(RULES["rules"])}  # a rule's path in the file


def test_checked_in_generated_models_are_current() -> None:
    stale = leads.stale()
    assert not stale, (
        f"generated lead scoring models are stale: {', '.join(p.name for p in stale)}; "
        "run `.venv/bin/tideline leads build` and commit dbt_project/models/marts/leads/"
    )


def copy_project(tmp_path: Path) -> Path:
    project = tmp_path / "dbt_project"
    (project / MODELS_DIR).mkdir(parents=True)
    shutil.copy(PROJECT / "lead_scoring.yml", project)
    for name in GENERATED:
        shutil.copy(PROJECT / MODELS_DIR / f"{name}.sql", project / MODELS_DIR)
    return project


def test_a_changed_rules_file_makes_the_models_stale_and_build_regenerates_them(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    assert leads.stale(project) == []
    path = project / "lead_scoring.yml"
    path.write_text(
        path.read_text().replace(
            "points: 25\n    reason: Viewed pricing", "points: 30\n    reason: Viewed pricing"
        )
    )
    assert [p.name for p in leads.stale(project)] == ["lead_score_rules.sql"]
    assert [p.name for p in leads.build(project)] == ["lead_score_rules.sql"]
    assert leads.stale(project) == []
    assert (
        "cast(30 as {{ type_double() }}) as points"
        in (project / MODELS_DIR / "lead_score_rules.sql").read_text()
    )


def test_check_command_names_the_stale_files_and_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    project = copy_project(tmp_path)
    (project / MODELS_DIR / "lead_score_fit.sql").write_text("-- edited by hand\n")
    # the module (activation.leads exports its `generate` function under the same name)
    monkeypatch.setattr(importlib.import_module("activation.leads.generate"), "PROJECT_DIR", project)
    assert main(["leads", "check"]) == 1
    err = capsys.readouterr().err
    assert "lead_score_fit.sql" in err and "tideline leads build" in err
    assert main(["leads", "build"]) == 0 and main(["leads", "check"]) == 0


def test_generated_sql_compiles_each_kind_of_rule() -> None:
    models = leads.render(leads.load())
    occurrences = models["lead_score_occurrences"]
    # an event rule filters the events by type and url, before the as-of cutoff
    assert (
        "from {{ ref('int_events_stitched') }} as e" in occurrences
        and "coalesce(e.url = 'https://shop.example.com/pricing', false)" in occurrences
        and "e.occurred_at < {{ as_of_cutoff() }}" in occurrences
    )
    # a message rule reads human clicks of fct_message_events
    assert "x.event_type = 'clicked'" in occurrences and "x.is_human" in occurrences
    assert "{{ ref('fct_message_events') }} as x" in occurrences
    # fit rules are conditions over dim_customers
    assert "d1.email_opt_in" in models["lead_score_fit"]
    rules = models["lead_score_rules"]
    assert (
        "cast('browsed_products' as {{ dbt.type_string() }}) as rule" in rules and "3 as min_count" in rules
    )
    stages = models["lead_stages"]
    assert stages.count("union all") == 6  # raw_lead, 2 score stages, 4 CRM stages
    assert (
        "select cast('lost' as {{ dbt.type_string() }}), 7, cast(null as {{ type_double() }}), "
        "cast('crm' as {{ dbt.type_string() }})" in stages
    )


def mutated(change) -> dict:
    raw = copy.deepcopy(RULES)
    change(raw)
    return raw


def rule(raw: dict, name: str) -> dict:
    return next(r for r in raw["rules"] if r["name"] == name)


CASES = [
    ("unknown top key", lambda r: r.update(decay=3), "x.yml: decay: unknown key 'decay'"),
    ("missing stages", lambda r: r.pop("stages"), "x.yml: (top): needs `stages:`"),
    (
        "stages out of order",
        lambda r: r["stages"].update(nurtured=50),
        "x.yml: stages.marketing_qualified: thresholds must rise",
    ),
    ("group kind", lambda r: r["groups"]["fit"].update(kind="profile"), "x.yml: groups.fit.kind: is fit"),
    ("cap missing", lambda r: r["groups"]["intent"].pop("cap"), "x.yml: groups.intent: needs `cap:`"),
    (
        "cap not positive",
        lambda r: r["groups"]["intent"].update(cap=0),
        "x.yml: groups.intent.cap: must be above 0",
    ),
    (
        "half-life on a fit group",
        lambda r: r["groups"]["fit"].update(half_life_days=3),
        "x.yml: groups.fit.half_life_days: fit points do not decay",
    ),
    (
        "half-life not whole days",
        lambda r: r.update(half_life_days="two weeks"),
        "x.yml: half_life_days: must be a whole number of days >= 1 (got 'two weeks')",
    ),
    (
        "points not a number",
        lambda r: rule(r, "viewed_pricing").update(points="lots"),
        f"x.yml: {AT['viewed_pricing']}.points: points must be a number (got 'lots')",
    ),
    (
        "zero points",
        lambda r: rule(r, "carted").update(points=0),
        f"x.yml: {AT['carted']}.points: must not be 0",
    ),
    (
        "unknown group",
        lambda r: rule(r, "carted").update(group="intnet"),
        f"x.yml: {AT['carted']}.group: unknown group 'intnet' (did you mean 'intent'?",
    ),
    (
        "unknown rule key",
        lambda r: rule(r, "carted").update(decay=2),
        f"x.yml: {AT['carted']}.decay: unknown key of a rule 'decay'",
    ),
    (
        "missing reason",
        lambda r: rule(r, "carted").pop("reason"),
        f"x.yml: {AT['carted']}: a rule needs `reason:`",
    ),
    (
        "duplicate name",
        lambda r: rule(r, "carted").update(name="viewed_pricing"),
        f"x.yml: {AT['carted']}.name: rule 'viewed_pricing' is already defined at {AT['viewed_pricing']}",
    ),
    (
        "event in a fit group",
        lambda r: rule(r, "core_market").update(where={"event": {"type": "signup"}}),
        f"x.yml: {AT['core_market']}.where.event: group 'fit' is a fit group: events and messages belong in a behaviour group",
    ),
    (
        "profile condition in a behaviour group",
        lambda r: rule(r, "carted").update(where={"consent": "email"}),
        f"x.yml: {AT['carted']}.where.consent: group 'intent' is a behaviour group",
    ),
    (
        "window other than within_days",
        lambda r: rule(r, "carted").update(where={"event": {"type": "add_to_cart", "before_days": 3}}),
        f"x.yml: {AT['carted']}.where.event.before_days: a behaviour rule's window is `within_days: N`",
    ),
    (
        "count other than gte",
        lambda r: rule(r, "browsed_products")["where"]["event"].update(count={"eq": 3}),
        f"x.yml: {AT['browsed_products']}.where.event.count: a behaviour rule counts occurrences as `count: {{gte: N}}`",
    ),
    (
        "count without a window",
        lambda r: rule(r, "browsed_products")["where"]["event"].pop("within_days"),
        f"x.yml: {AT['browsed_products']}.where.event.count: `count: {{gte: N}}` needs a window",
    ),
    (
        "not_followed_by",
        lambda r: rule(r, "carted")["where"]["event"].update(not_followed_by="order"),
        f"x.yml: {AT['carted']}.where.event.not_followed_by: leads have no purchase yet",
    ),
    (
        "message flag false",
        lambda r: rule(r, "clicked_email").update(where={"message": {"clicked": False}}),
        f"x.yml: {AT['clicked_email']}.where.message: `clicked: false` has no occurrence to score",
    ),
    (
        "score condition",
        lambda r: rule(r, "core_market").update(where={"score": {"name": "churn_probability", "gte": 0.5}}),
        f"x.yml: {AT['core_market']}.where.score: lead rules cannot read ml scores",
    ),
    (
        "condition shape (from the condition parser)",
        lambda r: rule(r, "carted")["where"]["event"].update(within_days="week"),
        f"x.yml: {AT['carted']}.where.event.within_days: must be a whole number of days >= 1 (got 'week')",
    ),
    (
        "reason with Jinja",
        lambda r: rule(r, "carted").update(reason="{{ evil }}"),
        f"x.yml: {AT['carted']}.reason:",
    ),
    (
        "reason too long",
        lambda r: rule(r, "carted").update(reason="x" * 61),
        f"x.yml: {AT['carted']}.reason: reason is shown in lists of reasons: at most 60 characters",
    ),
    (
        "group without rules",
        lambda r: r["groups"].update(spare={"kind": "fit", "cap": 5}),
        "x.yml: groups.spare: group 'spare' has no rules",
    ),
]


@pytest.mark.parametrize(("what", "change", "message"), CASES, ids=[c[0] for c in CASES])
def test_mistakes_name_the_file_the_rule_and_the_field(what: str, change, message: str) -> None:
    with pytest.raises(ConditionError) as caught:
        leads.parse(mutated(change), "x.yml")
    assert str(caught.value).startswith(message), str(caught.value)


def test_names_and_types_are_checked_when_compiling() -> None:
    raw = mutated(
        lambda r: rule(r, "core_market").update(where={"attribute": {"name": "contry", "eq": "DE"}})
    )
    with pytest.raises(
        ConditionError,
        match=r"x.yml: rules\[1\].where.attribute.name: unknown attribute 'contry' \(did you mean 'country'",
    ):
        leads.render(leads.parse(raw, "x.yml"))
    raw = mutated(lambda r: rule(r, "carted").update(where={"event": {"type": "webinar"}}))
    with pytest.raises(
        ConditionError, match=r"x.yml: rules\[5\].where.event.type: unknown event type 'webinar'"
    ):
        leads.render(leads.parse(raw, "x.yml"))


def test_a_missing_or_broken_file_names_itself(tmp_path: Path) -> None:
    with pytest.raises(ConditionError, match="lead_scoring.yml: \\(top\\): the lead scoring file is missing"):
        leads.load(tmp_path / "lead_scoring.yml")
    broken = tmp_path / "lead_scoring.yml"
    broken.write_text("rules: [\n")
    with pytest.raises(ConditionError, match="is not valid YAML"):
        leads.load(broken)


def test_rules_parse_into_groups_windows_and_counts() -> None:
    scoring = leads.load()
    by_name = {r.name: r for r in scoring.rules}
    assert (
        by_name["viewed_pricing"].group.half_life_days == 10 and by_name["viewed_pricing"].window_days == 60
    )
    assert by_name["clicked_email"].group.half_life_days == 14  # the file's default
    assert by_name["browsed_products"].min_count == 3 and by_name["browsed_products"].window_days == 14
    assert by_name["core_market"].kind == "fit" and by_name["core_market"].group.half_life_days is None
    assert by_name["unsubscribed"].points == -20
    assert scoring.stages == {"nurtured": 15.0, "marketing_qualified": 40.0}
