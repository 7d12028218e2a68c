"""The landing-zone contract is what the README documents and what the dbt sources declare."""

from __future__ import annotations

from pathlib import Path

import yaml

from tideline.landing.contract import ENTITIES, ORDERS, contract_markdown
from tideline.settings import DBT_PROJECT_DIR, REPO_ROOT


def test_readme_documents_every_entity_as_the_contract_says() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert contract_markdown() in readme, "README landing-zone reference is stale: paste contract_markdown()"


def test_every_entity_is_a_dbt_source() -> None:
    """One source per landing folder (crm, commerce, ...), each in staging/<source>/_<source>__sources.yml."""
    tables = set()
    for path in Path(DBT_PROJECT_DIR, "models/staging").glob("*/_*__sources.yml"):
        for source in yaml.safe_load(path.read_text())["sources"]:
            if source.get("schema") == "landing":
                tables |= {t["name"] for t in source["tables"]}
    assert {e.name for e in ENTITIES} <= tables


def test_orders_alone_are_required() -> None:
    assert [e.name for e in ENTITIES if e.required] == [ORDERS.name]
    assert ORDERS.required_columns == ["order_id", "customer_id", "ordered_at", "amount"]


def test_each_entity_has_a_staging_model() -> None:
    staged = {p.stem for p in Path(DBT_PROJECT_DIR, "models/staging").rglob("base_*.sql")}
    assert len(staged) == len(ENTITIES)
