"""Every mart is documented and tested (read from the dbt manifest that `dbt parse` builds)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
CODE_FOLDERS = ("activation", "models_ml", "orchestration", "tideline", "config")


@pytest.fixture(scope="module")
def manifest(dbt_manifest: Path) -> dict:
    return json.loads(dbt_manifest.read_text())


def _marts(manifest: dict) -> list[dict]:
    return [
        n
        for n in manifest["nodes"].values()
        if n["resource_type"] == "model" and n["original_file_path"].startswith("models/marts/")
    ]


def test_every_mart_model_and_column_has_a_description(manifest: dict) -> None:
    marts = _marts(manifest)
    assert len(marts) >= 9
    missing = [n["name"] for n in marts if not n["description"].strip()]
    assert not missing, f"marts without description: {missing}"
    for node in marts:
        assert node["columns"], f"{node['name']} documents no columns"
        undocumented = [c for c, meta in node["columns"].items() if not meta["description"].strip()]
        assert not undocumented, f"{node['name']}: columns without description {undocumented}"


def test_every_mart_states_its_grain(manifest: dict) -> None:
    """CONVENTIONS: one grain per model, stated in its description ("Grain: one row per ...")."""
    no_grain = [n["name"] for n in _marts(manifest) if "grain: one row per" not in n["description"].lower()]
    assert not no_grain, f"marts whose description states no grain: {no_grain}"


def test_every_mart_has_data_tests(manifest: dict) -> None:
    tested = {
        dep
        for n in manifest["nodes"].values()
        if n["resource_type"] == "test"
        for dep in n["depends_on"]["nodes"]
    }
    untested = [n["name"] for n in _marts(manifest) if n["unique_id"] not in tested]
    assert not untested, f"marts without data tests: {untested}"


# --- layout and names (docs/architecture.md, "Conventions") --------------------------------------------

LAYER_PREFIXES = ("stg", "base", "int")  # the layers below marts
FOREIGN_PREFIXES = ("fact", "facts", "dimension", "dimensions", "agg", "rpt", "report", "mart", "vw", "tmp")


def _models(manifest: dict) -> list[dict]:
    return [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]


def _folder(node: dict) -> Path:
    return Path(node["original_file_path"]).parent


def _sources_read(manifest: dict, node: dict) -> set[str]:
    return {
        manifest["sources"][dep]["source_name"]
        for dep in node["depends_on"]["nodes"]
        if dep.startswith("source.")
    }


def bookkeeping(node: dict) -> set[str]:
    return {"landing"} if node["config"].get("materialized") == "incremental" else set()


def test_staging_models_live_in_their_source_folder(manifest: dict) -> None:
    """models/staging/<source>/stg_<source>__<entity>.sql, base models in its base/ subfolder,
    and a staging model reads no other source than its folder's (an incremental one also reads the
    landing loader's history, `landing`, to find what changed: dbt_project/macros/incremental.sql)."""
    wrong = []
    for node in _models(manifest):
        path = Path(node["original_file_path"])
        if path.parts[:2] != ("models", "staging"):
            continue
        base = path.parent.name == "base"
        source = path.parts[2]
        expected = Path("models/staging", source, *(["base"] if base else []))
        prefix = f"{'base' if base else 'stg'}_{source}__"
        if path.parent != expected or not node["name"].startswith(prefix):
            wrong.append(f"{path}: expected {expected}/{prefix}<entity>.sql")
        elif _sources_read(manifest, node) - {source} - bookkeeping(node):
            extra = _sources_read(manifest, node) - {source} - bookkeeping(node)
            wrong.append(f"{path} reads source(s) {sorted(extra)}")
    assert not wrong, "staging layout: " + "; ".join(wrong)


def test_every_source_is_declared_in_its_own_folder(manifest: dict) -> None:
    """Source <s> is declared in models/staging/<s>/_<s>__sources.yml (one file per source)."""
    wrong = [
        f"{s['source_name']}: {s['original_file_path']}"
        for s in manifest["sources"].values()
        if s["original_file_path"] != f"models/staging/{s['source_name']}/_{s['source_name']}__sources.yml"
    ]
    assert not wrong, f"sources declared outside staging/<source>/_<source>__sources.yml: {wrong}"


def test_every_model_is_documented_next_to_it(manifest: dict) -> None:
    """The YAML of a model is `_<folder>__models.yml` in its folder (`_int_<folder>__models.yml` in
    intermediate; a base/ model's is its source folder's)."""
    wrong = []
    for node in _models(manifest):
        folder = _folder(node)
        if folder.name == "base":
            folder = folder.parent
        layer = Path(node["original_file_path"]).parts[1]
        name = f"_{'int_' if layer == 'intermediate' else ''}{folder.name}__models.yml"
        expected = f"tideline://{folder / name}"
        if node.get("patch_path") != expected:
            wrong.append(f"{node['name']}: {node.get('patch_path')} (expected {expected.split('//')[1]})")
    assert not wrong, "models not documented next to them: " + "; ".join(wrong)


COLLECTIVE_NOUNS = {"staff"}  # plural without an s: dim_staff is keyed by staff_id


def _mart_name_problem(node: dict) -> str | None:
    """What is wrong with a mart's name under the naming rule, or None."""
    name = node["name"]
    first = name.split("_", 1)[0]
    if first in LAYER_PREFIXES:
        return f"{first}_ is the prefix of a lower layer"
    if first in FOREIGN_PREFIXES:
        return f"{first}_ is not a mart prefix (fct_, dim_ or a plain business noun)"
    columns = node["columns"]
    if first == "dim":
        entity = name.removeprefix("dim_")
        key = f"{entity.removesuffix('s')}_id"
        if (not entity.endswith("s") and entity not in COLLECTIVE_NOUNS) or key not in columns:
            return f"a dimension is dim_<entities> keyed by <entity>_id (no column {key})"
    if first == "fct" and not any(c.endswith(("_at", "_date")) for c in columns):
        return "a fact says when its event happened (a documented *_at or *_date column)"
    return None


def test_mart_names_follow_the_rule(manifest: dict) -> None:
    """fct_<events> for facts, dim_<entities> for dimensions, plain business nouns for derived marts."""
    problems = {n["name"]: p for n in _marts(manifest) if (p := _mart_name_problem(n))}
    assert not problems, f"mart names against the naming rule: {problems}"
    names = {n["name"] for n in _marts(manifest)}
    assert {"dim_customers", "fct_messages", "customer_rfm", "channel_roi"} <= names  # names users read


def test_the_naming_rule_is_written_with_every_fact_and_dimension(manifest: dict) -> None:
    """docs/architecture.md "Conventions" states the rule and lists the fct_/dim_ marts it names."""
    text = (REPO_ROOT / "docs/architecture.md").read_text()
    assert "\n## Conventions\n" in text, "docs/architecture.md has no Conventions section"
    section = text.split("\n## Conventions\n", 1)[1].split("\n## ", 1)[0]
    assert "plain business nouns" in section
    unlisted = [
        n["name"]
        for n in _marts(manifest)
        if n["name"].startswith(("fct_", "dim_")) and f"`{n['name']}`" not in section
    ]
    assert not unlisted, f"facts and dimensions the Conventions section does not name: {unlisted}"


def test_dimension_keys_are_unique(manifest: dict) -> None:
    tested = {
        (n["test_metadata"]["name"], n["attached_node"], n.get("column_name"))
        for n in manifest["nodes"].values()
        if n["resource_type"] == "test" and n.get("test_metadata")
    }
    for node in _marts(manifest):
        if node["name"].startswith("dim_"):
            key = f"{node['name'].removeprefix('dim_').removesuffix('s')}_id"
            for test in ("unique", "not_null"):
                assert (test, node["unique_id"], key) in tested, f"{node['name']}.{key} has no {test} test"


@pytest.mark.parametrize(
    ("name", "columns", "problem"),
    [
        ("stg_orders_copy", {"order_id"}, "lower layer"),
        ("agg_daily_sends", {"send_date"}, "not a mart prefix"),
        ("dim_customer", {"customer_id"}, "dim_<entities>"),
        ("dim_products", {"sku"}, "no column product_id"),
        ("fct_sends", {"campaign", "sent"}, "says when"),
        ("dim_products", {"product_id"}, None),
        ("fct_sends", {"sent_at"}, None),
        ("campaign_scorecard", {"campaign"}, None),
    ],
)
def test_the_naming_rule_refuses_what_it_should(name: str, columns: set[str], problem: str | None) -> None:
    found = _mart_name_problem({"name": name, "columns": dict.fromkeys(columns, {})})
    assert (found is None) if problem is None else (found is not None and problem in found), found


DOC_PATH = re.compile(r"\bdocs/[\w-]+\.md\b")
MARKDOWN_LINK = re.compile(r"\]\(([\w./-]+\.md)(?:#[\w-]*)?\)")


def test_every_doc_the_project_points_to_exists() -> None:
    """`docs/x.md` named in dbt files, code and config, and relative Markdown links in README and docs/."""
    missing = []
    for path in [REPO_ROOT / "README.md", *(REPO_ROOT / "docs").glob("*.md")]:
        for link in MARKDOWN_LINK.findall(path.read_text()):
            if not (path.parent / link).exists():
                missing.append(f"{path.relative_to(REPO_ROOT)} links {link}")
    sources = [
        *(p for p in DBT_PROJECT_DIR.rglob("*") if p.suffix in {".sql", ".yml", ".md"}),
        *(p for folder in CODE_FOLDERS for p in (REPO_ROOT / folder).rglob("*.py")),
        *(REPO_ROOT / "config").glob("*.yml"),
    ]
    for path in sources:
        if any(part in {"target", "dbt_packages", "logs"} for part in path.parts):
            continue
        for doc in set(DOC_PATH.findall(path.read_text())):
            if not (REPO_ROOT / doc).exists():
                missing.append(f"{path.relative_to(REPO_ROOT)} names {doc}")
    assert not missing, f"references to missing docs: {missing}"
