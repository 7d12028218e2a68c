"""Tag rules through dbt: a copy of the project whose tags.yml has three more rules, generated with
activation.tags and built on the landing zone of test_customer_marts (as of 2025-06-30).

Hand-worked (see test_customer_marts' docstring for who is who):
- german_buyer (country DE and a buyer): c1 (c14 is German but never bought).
- whale (spent 100,000 or more): nobody, so it shows in tag_health with 0.
- first_order_10d / first_order_9d (a buyer; since first_order_at; expires_after_days 10 / 9):
  first orders c4 2025-06-20 (10 days before the as-of date: in with 10, out with 9), g1
  2025-06-29 (1 day), c7 2025-02-15, c1 2024-01-10, c6 2023-02-01 (out).
- high_value_at_risk with scores (top share var set to 0.5): predicted CLV c4 800, c6 500,
  g1 300, c1 10 rank 0, 1/3, 2/3, 1 -> c4 and c6 in the top half; churn c4 0.1, c6 0.9 -> c6.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest
import yaml

from activation import tags
from tests.dbt.test_customer_marts import AS_OF, VARS, write_landing_zone
from tests.helpers import Warehouse, dbt_executable, load_landing_zone  # wherever the project keeps them

pytestmark = pytest.mark.slow

ORIGINAL = {
    "vip": {"c6"},
    "high_potential": {"g1"},
    "new_signup": {"c5", "g1"},
    "dormant": {"c6"},
    "at_risk": {"c7"},
    "price_sensitive": {"c1"},
    "cart_abandoner": {"c5", "c7"},
    "one_time_buyer": {"c4", "c7", "g1"},
}
BUYER = {"attribute": {"name": "is_buyer", "eq": True}}
EXTRA_RULES = [
    {
        "name": "german_buyer",
        "description": "German customers who bought",
        "where": {"all": [{"attribute": {"name": "country", "eq": "DE"}}, BUYER]},
        "reason": "{order_count} order(s), country {country}",
    },
    {"name": "whale", "description": "Spent a fortune", "where": {"order": {"sum": {"gte": 100000}}}},
    {
        "name": "first_order_10d",
        "description": "First order in the last 10 days",
        "where": BUYER,
        "since": "first_order_at",
        "expires_after_days": 10,
        "reason": "first order {days_since_tagged} day(s) ago, on {tagged_at}",
    },
    {
        "name": "first_order_9d",
        "description": "First order in the last 9 days",
        "where": BUYER,
        "since": "first_order_at",
        "expires_after_days": 9,
    },
]


class Project:
    def __init__(self, root: Path, warehouse: Path):
        self.root, self.warehouse = root, warehouse

    def dbt(self, command: str, *args: str, extra_vars: dict | None = None) -> None:
        env = {
            **os.environ,
            "TIDELINE_WAREHOUSE": str(self.warehouse),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        }
        variables = json.dumps({"as_of": AS_OF, **VARS, **(extra_vars or {})})
        done = subprocess.run(
            [dbt_executable(), command, "--profiles-dir", str(self.root), "--vars", variables, *args],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise AssertionError(f"dbt {command} failed:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}")

    def execute(self, sql: str, params: list | None = None) -> None:
        con = duckdb.connect(str(self.warehouse))
        try:
            con.execute(sql, params or [])
        finally:
            con.close()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    base = tmp_path_factory.mktemp("tag_rules")
    root = base / "dbt_project"
    shutil.copytree(tags.PROJECT_DIR, root, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    rules = yaml.safe_load((root / "tags.yml").read_text())["tags"]
    (root / "tags.yml").write_text(yaml.safe_dump({"tags": rules + EXTRA_RULES}, sort_keys=False))
    assert {p.name for p in tags.build(root)} == {"customer_tags_rules.sql", "tag_health.sql"}
    write_landing_zone(base / "raw")
    warehouse = base / "warehouse.duckdb"
    con = duckdb.connect(str(warehouse))
    try:
        load_landing_zone(base / "raw", con)
    finally:
        con.close()
    built = Project(root, warehouse)
    built.dbt("build", "--exclude-resource-type", "unit_test")  # none tests a tag model (tests/helpers.py)
    return built


def tagged(warehouse: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for customer, tag in Warehouse(warehouse).query("select customer_id, tag from marts.customer_tags"):
        found.setdefault(tag, set()).add(customer)
    return found


def test_new_rules_yield_their_tags_and_the_nine_keep_theirs(project: Project) -> None:
    found = tagged(project.warehouse)
    assert found == {
        **ORIGINAL,
        "german_buyer": {"c1"},
        "first_order_10d": {"c4", "g1"},
        "first_order_9d": {"g1"},
    }
    reasons = dict(
        ((c, t), r)
        for c, t, r in Warehouse(project.warehouse).query(
            "select customer_id, tag, reason from marts.customer_tags"
        )
    )
    assert reasons[("c1", "german_buyer")] == "3 order(s), country DE"
    assert reasons[("c4", "first_order_10d")] == "first order 10 day(s) ago, on 2025-06-20"
    assert reasons[("g1", "first_order_9d")] == "First order in the last 9 days"  # no reason: the description


def test_tag_health_lists_every_rule_including_tags_nobody_has(project: Project) -> None:
    health = {
        tag: (count, needs)
        for tag, count, needs in Warehouse(project.warehouse).query(
            "select tag, customers_tagged, needs_scores from marts.tag_health"
        )
    }
    assert set(health) == set(tags.rule_names(project.root / "tags.yml"))
    assert health["whale"] == (0, False)
    assert health["high_value_at_risk"] == (0, True)
    assert health["first_order_10d"] == (2, False)


def test_rule_tags_do_not_depend_on_the_scores_source(project: Project) -> None:
    manifest = json.loads((project.root / "target" / "manifest.json").read_text())
    nodes = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    scores = "source.tideline.ml.customer_scores"
    assert scores not in nodes["customer_tags_rules"]["depends_on"]["nodes"]
    assert scores in nodes["customer_tags_scored"]["depends_on"]["nodes"]


def test_without_usable_scores_every_rule_tag_is_still_built_and_with_scores_the_score_tag(
    project: Project,
) -> None:
    tag_models = ["--select", "customer_tags_rules", "customer_tags_scored", "customer_tags", "tag_health"]
    expected_rules = {
        **ORIGINAL,
        "german_buyer": {"c1"},
        "first_order_10d": {"c4", "g1"},
        "first_order_9d": {"g1"},
    }
    # no scores table at all (the on-run-start hook creates it empty again)
    project.execute("drop table ml.customer_scores")
    project.dbt("run", *tag_models)
    assert tagged(project.warehouse) == expected_rules
    # models not trained: a row per customer with every score null
    project.execute(
        "insert into ml.customer_scores (customer_id, scored_at, model_version, as_of_date) "
        "select customer_id, timestamp '2025-06-30 03:00', 'none', date '2025-06-30' from marts.dim_customers"
    )
    project.dbt("run", *tag_models)
    assert tagged(project.warehouse) == expected_rules
    # usable scores
    project.execute("delete from ml.customer_scores")
    project.execute(
        "insert into ml.customer_scores (customer_id, churn_probability, predicted_clv, scored_at, model_version, "
        "as_of_date) values ('c4', 0.1, 800, timestamp '2025-06-30 03:00', 'v1', date '2025-06-30'), "
        "('c6', 0.9, 500, timestamp '2025-06-30 03:00', 'v1', date '2025-06-30'), "
        "('g1', 0.8, 300, timestamp '2025-06-30 03:00', 'v1', date '2025-06-30'), "
        "('c1', 0.9, 10, timestamp '2025-06-30 03:00', 'v1', date '2025-06-30')"
    )
    project.dbt("run", *tag_models, extra_vars={"tag_high_value_at_risk_top_clv_share": 0.5})
    assert tagged(project.warehouse) == {**expected_rules, "high_value_at_risk": {"c6"}}
    rows = Warehouse(project.warehouse).query(
        "select cast(tagged_at as varchar), reason from marts.customer_tags where tag = 'high_value_at_risk'"
    )
    assert rows == [
        ("2025-06-30 03:00:00", "churn risk 90.0%, predicted value 500.0 in the top 50%")
    ]  # as before: round() of a double
