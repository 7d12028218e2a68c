"""The condition catalog says what the dbt project says: a column documented on dim_customers is
addressable (or listed as excluded with the reason), and the closed lists (lifecycle stages, RFM
segments, tags, order statuses, score columns) and the relations the compiler reads match the
project's YAML, seeds and SQL. A change there fails here, naming what to update."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from activation.conditions import catalog as cat

DBT = Path(__file__).resolve().parents[2] / "dbt_project"


def _model_yaml(name: str) -> dict:
    """The YAML entry of model `name` (wherever the models YAML lives: folders move)."""
    for path in sorted((DBT / "models").rglob("*.yml")):
        for model in (yaml.safe_load(path.read_text()) or {}).get("models", []) or []:
            if model.get("name") == name:
                return model
    raise AssertionError(f"model {name} is not documented in any models YAML under {DBT / 'models'}")


def _columns(name: str) -> dict[str, dict]:
    return {c["name"]: c for c in _model_yaml(name).get("columns", [])}


def _accepted(name: str, column: str) -> list[str]:
    for test in _columns(name)[column].get("data_tests", []):
        if isinstance(test, dict) and "accepted_values" in test:
            return [v.replace("''", "'") for v in test["accepted_values"]["arguments"]["values"]]
    raise AssertionError(f"{name}.{column} has no accepted_values test")


def _model_sql(name: str) -> Path:
    found = list((DBT / "models").rglob(f"{name}.sql"))
    assert len(found) == 1, f"model {name}: expected one {name}.sql under dbt_project/models, found {found}"
    return found[0]


def test_every_documented_dim_customers_column_is_addressable_or_excluded_with_a_reason() -> None:
    documented = set(_columns("dim_customers"))
    addressable, excluded = set(cat.DIM_CUSTOMERS), set(cat.EXCLUDED_ATTRIBUTES)
    new = documented - addressable - excluded
    assert not new, (
        f"dim_customers documents {sorted(new)}: add each to DIM_CUSTOMERS in activation/conditions/catalog.py "
        "with its type (and personal=True for personal data), or to EXCLUDED_ATTRIBUTES with the reason"
    )
    stale = (addressable | excluded) - documented
    assert not stale, f"catalog attributes {sorted(stale)} are no longer documented on dim_customers"


def test_attribute_types_follow_the_column_names() -> None:
    """The naming conventions of dim_customers carry the types (…_at timestamps, is_… / …_opt_in
    booleans, counts integers): a catalog type that disagrees is a typo."""
    for name, column in cat.DIM_CUSTOMERS.items():
        if name.endswith("_at"):
            assert column.type == cat.TIMESTAMP, name
        elif name.startswith("is_") or name.endswith("_opt_in"):
            assert column.type == cat.BOOLEAN, name
        elif name.endswith(("_count", "_accounts")):
            assert column.type == cat.INTEGER, name
    personal = {n for n, c in cat.DIM_CUSTOMERS.items() if c.personal}
    assert personal == {"email", "phone", "first_name", "last_name", "birth_date"}


def test_rfm_lifecycle_and_their_closed_lists() -> None:
    assert set(cat.RFM) <= set(_columns("customer_rfm")), "catalog RFM names a column customer_rfm lacks"
    numeric = {
        n
        for n, c in _columns("customer_rfm").items()
        if n.endswith(("_score", "_days")) or n in ("frequency", "monetary")
    }
    assert numeric <= set(cat.RFM), (
        f"customer_rfm columns {sorted(numeric - set(cat.RFM))} are not addressable"
    )
    assert list(cat.RFM_SEGMENTS) == _accepted("rfm_segments", "rfm_segment")
    assert list(cat.LIFECYCLE_STAGES) == _accepted("customer_lifecycle", "lifecycle_stage")
    assert {"lifecycle_stage", "days_in_stage"} <= set(_columns("customer_lifecycle"))


def test_tags_are_the_rules_of_the_tag_rules_file() -> None:
    rules = yaml.safe_load((DBT / "tags.yml").read_text())["tags"]
    assert list(cat.Catalog().tags) == [rule["name"] for rule in rules]


def test_scores_are_the_numeric_columns_of_ml_customer_scores() -> None:
    macro = (DBT / "macros" / "ml_tables.sql").read_text()
    block = macro[macro.index("macro ml_score_columns") : macro.index("endmacro")]
    columns = dict(re.findall(r"\('(\w+)', '([\w ]+)'\)", block))
    assert set(cat.SCORES) == {n for n, t in columns.items() if t == "double precision"}
    assert {"customer_id", "as_of_date", "scored_at"} <= set(columns)


def test_event_and_order_fields_are_columns_of_their_relations() -> None:
    events = _model_sql("int_events_stitched").read_text()
    for field in set(cat.EVENT_FIELDS) - {"category"}:
        assert re.search(rf"\b{field}\b", events), f"int_events_stitched has no {field}"
    assert re.search(r"\bcategory\b", _model_sql("stg_commerce__products").read_text())
    orders = _model_sql("int_orders_resolved").read_text()
    for field in (*cat.ORDER_FIELDS, "is_purchase", "ordered_at", "customer_id"):
        assert re.search(rf"\b{field}\b", orders), f"int_orders_resolved has no {field}"
    assert list(cat.ORDER_STATUSES) == _accepted("stg_commerce__orders", "status")


def test_message_columns_and_channels() -> None:
    messages, events = _columns("fct_messages"), _columns("fct_message_events")
    assert {"customer_id", "campaign", "channel", "is_sent", "sent_at"} <= set(messages)
    assert {"customer_id", "campaign", "channel", "event_type", "is_human", "occurred_at"} <= set(events)
    assert {"opened", "clicked", "unsubscribed"} <= set(_accepted("fct_message_events", "event_type"))
    assert list(cat.MESSAGE_CHANNELS) == _accepted("fct_messages", "channel")
    consent = set(_columns("dim_customers"))
    assert all(column in consent for column in cat.CONSENT_COLUMNS.values())
    assert set(cat.CONSENT_COLUMNS) == set(cat.MESSAGE_CHANNELS)


def test_relations_exist_in_the_project_in_their_schemas() -> None:
    layer_schema = {"marts": "marts", "intermediate": "intermediate", "staging": "staging"}
    for key, relation in cat.RELATIONS.items():
        if relation.source is not None:
            sources = yaml.safe_load(next((DBT / "models").rglob("_ml__sources.yml")).read_text())["sources"]
            tables = {(s["name"], t["name"]) for s in sources for t in s["tables"]}
            assert relation.source in tables, key
            continue
        path = _model_sql(relation.ref)
        layer = path.relative_to(DBT / "models").parts[0]
        assert layer_schema[layer] == relation.schema, f"{key}: {relation.ref} builds in {layer}"
