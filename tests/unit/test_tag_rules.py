"""The tag rules file (dbt_project/tags.yml) and the models generated from it (activation/tags.py).

Fast: no dbt build here (tests/dbt/test_tag_rules_build.py builds a copy of the project).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from activation import tags
from activation.conditions import Catalog, ConditionError
from tideline import cli

SHIPPED = tags.default_rules_file()
NINE = (
    "vip",
    "high_potential",
    "new_signup",
    "dormant",
    "at_risk",
    "price_sensitive",
    "cart_abandoner",
    "one_time_buyer",
    "high_value_at_risk",
)


def test_generated_models_are_current() -> None:
    outdated = tags.stale()
    assert not outdated, (
        f"generated tag models differ from dbt_project/tags.yml: {[p.name for p in outdated]}; "
        f"run `{tags.BUILD_COMMAND}`"
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of what the generator reads and writes: dbt_project.yml, tags.yml, the customers models."""
    root = tmp_path / "dbt_project"
    (root / tags.MODELS_DIR).mkdir(parents=True)
    shutil.copy(tags.PROJECT_DIR / "dbt_project.yml", root)
    shutil.copy(SHIPPED, root)
    for name in tags.GENERATED:
        shutil.copy(tags.PROJECT_DIR / tags.MODELS_DIR / f"{name}.sql", root / tags.MODELS_DIR)
    return root


def rules_of(project: Path) -> list[dict]:
    return yaml.safe_load((project / "tags.yml").read_text())["tags"]


def write_rules(project: Path, rules: list[dict]) -> None:
    (project / "tags.yml").write_text(yaml.safe_dump({"tags": rules}, sort_keys=False))


def test_a_changed_rule_makes_the_models_stale_and_build_refreshes_them(project: Path, capsys) -> None:
    assert tags.stale(project) == []
    rules = rules_of(project)
    rules.append(
        {"name": "big_spender", "description": "Spent a lot", "where": {"order": {"sum": {"gte": 1000}}}}
    )
    write_rules(project, rules)
    outdated = {p.name for p in tags.stale(project)}
    assert outdated == {"customer_tags_rules.sql", "tag_health.sql"}  # the scored model is unchanged
    changed = tags.build(project)
    assert {p.name for p in changed} == outdated and tags.stale(project) == []
    model = (project / tags.MODELS_DIR / "customer_tags_rules.sql").read_text()
    assert "big_spender__matched as (" in model and "'big_spender' as tag" in model
    assert model.startswith("-- ") and "Generated from dbt_project/tags.yml: do not edit" in model
    assert "`tideline tags build`" in model
    assert (
        "('big_spender', 'Spent a lot', false)" in (project / tags.MODELS_DIR / "tag_health.sql").read_text()
    )


def test_check_command_names_the_stale_files_and_the_command(project: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(tags, "PROJECT_DIR", project)
    assert cli.main(["tags", "check"]) == 0
    (project / tags.MODELS_DIR / "tag_health.sql").write_text("-- edited by hand\n")
    assert cli.main(["tags", "check"]) == 1
    err = capsys.readouterr().err
    assert "dbt_project/models/marts/customers/tag_health.sql" in err
    assert "run `tideline tags build`" in err


def test_the_shipped_rules_are_the_nine_tags_and_the_catalog_reads_them() -> None:
    assert tags.rule_names() == NINE
    assert Catalog().tags == NINE
    rules = {r.name: r for r in tags.load_rules(SHIPPED)}
    assert [n for n, r in rules.items() if r.needs_scores] == ["high_value_at_risk"]
    assert (
        rules["new_signup"].since.kind == "attribute" and rules["new_signup"].expires_after_days is not None
    )


def test_rule_tags_never_read_the_scores_and_score_tags_only_do() -> None:
    models = tags.PROJECT_DIR / tags.MODELS_DIR
    rules_sql = (models / "customer_tags_rules.sql").read_text()
    scored_sql = (models / "customer_tags_scored.sql").read_text()
    assert "source('ml'" not in rules_sql  # so Dagster's `source:ml+` selection leaves it out
    assert "source('ml', 'customer_scores')" in scored_sql
    assert [n for n in NINE if f"'{n}' as tag" in rules_sql] == list(NINE[:-1])
    assert "'high_value_at_risk' as tag" in scored_sql


def test_a_catalog_from_another_rules_file(project: Path) -> None:
    rules = rules_of(project)
    rules.append(
        {"name": "loyal_fan", "description": "Fan", "where": {"attribute": {"name": "order_count", "gte": 5}}}
    )
    write_rules(project, rules)
    assert tags.rule_names(project / "tags.yml") == (*NINE, "loyal_fan")


# --- errors name the file and the path ---------------------------------------------------------------


def error_of(project: Path, rules: list | dict | str) -> str:
    path = project / "tags.yml"
    path.write_text(
        rules
        if isinstance(rules, str)
        else yaml.safe_dump({"tags": rules} if isinstance(rules, list) else rules)
    )
    with pytest.raises(ConditionError) as info:
        tags.generate(project)
    return str(info.value)


OK = {"name": "fine", "description": "Fine", "where": {"attribute": {"name": "order_count", "gte": 1}}}


@pytest.mark.parametrize(
    ("rule", "where", "says"),
    [
        ({**OK, "colour": "red"}, "tags[1].colour", "unknown key of a tag rule 'colour'"),
        ({**OK, "name": "Big Spender"}, "tags[1].name", "lower-case letters"),
        ({k: v for k, v in OK.items() if k != "where"}, "tags[1]", "needs `where:`"),
        ({**OK, "where": {"tag": "vip"}}, "tags[1].where.tag", "cannot test tags"),
        ({**OK, "where": {"audience": "x"}}, "tags[1].where.audience", "cannot test audience"),
        ({**OK, "where": {"attribute": {"name": "contry", "eq": "DE"}}}, "tags[1].where.attribute.name", "did you mean 'country'"),
        ({**OK, "where": {"attribute": {"name": "revenue", "gte": {"var": "tag_vip"}}}}, "tags[1].where.attribute.gte.var", "unknown dbt var 'tag_vip'"),
        ({**OK, "since": "signup"}, "tags[1].since", "unknown since 'signup'"),
        ({**OK, "since": "email"}, "tags[1].since", "unknown since 'email'"),
        ({**OK, "since": {"last_event": {"type": "add_to_kart"}}}, "tags[1].since.event.type", "unknown event type"),
        ({**OK, "reason": "{revenu} spent"}, "tags[1].reason", "unknown reason field 'revenu'"),
        ({**OK, "reason": "hello {email}"}, "tags[1].reason", "personal data"),
        ({**OK, "reason": "{country:percent}"}, "tags[1].reason", "percent needs a number"),
        ({**OK, "reason": "{revenue:money}"}, "tags[1].reason", "unknown format 'money'"),
        ({**OK, "reason": "half { open"}, "tags[1].reason", "unbalanced brace"),
        ({**OK, "description": "{{ evil }}"}, "tags[1].description", "Jinja"),
        ({**OK, "expires_after_days": -1}, "tags[1].expires_after_days", "whole number of days"),
        ({**OK, "expires_after_days": {"var": "nope"}}, "tags[1].expires_after_days.var", "unknown dbt var"),
        ({**OK, "needs_scores": True}, "tags[1].needs_scores", "does not read ml.customer_scores"),
        ({**OK, "where": {"score": {"name": "p_alive", "gte": 0.5}}, "needs_scores": False}, "tags[1].needs_scores", "reads ml.customer_scores"),
        ({**OK, "name": "vip"}, "tags[1].name", "tag 'vip' is already defined at tags[0]"),
    ],
)  # fmt: skip
def test_rule_errors_name_the_file_and_the_path(project: Path, rule: dict, where: str, says: str) -> None:
    first = {
        "name": "vip",
        "description": "Top",
        "where": {"attribute": {"name": "revenue", "top_share": 0.1}},
    }
    message = error_of(project, [first, rule])
    assert message.startswith(f"{project / 'tags.yml'}: {where}: "), message
    assert says in message, message


def test_file_level_errors(project: Path) -> None:
    assert "tags.yml: line 2: is not valid YAML" in error_of(project, "tags:\n\t- name: vip\n")
    assert "must be a mapping with one key, `tags:`" in error_of(project, {"rules": []})
    assert "tags: lists no rules" in error_of(project, [])
    (project / "tags.yml").unlink()
    with pytest.raises(ConditionError, match="the tag rules file is missing"):
        tags.generate(project)


def test_the_shipped_file_is_named_relative_to_the_repository() -> None:
    assert tags.display_name(SHIPPED) == "dbt_project/tags.yml"
