"""Every mart is documented and tested (read from the dbt manifest that `dbt parse` builds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


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
