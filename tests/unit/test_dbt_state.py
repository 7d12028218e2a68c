"""Which dbt nodes a build reuses: only those whose inputs (project, sources, parents) are the same
as at their last successful build and whose table is still there."""

import copy
import datetime as dt
import json
import re

import duckdb
import pytest

from tideline.dbt_state import (
    as_of_date,
    exclude_argument,
    load_state,
    plan_build,
    project_digest,
    save_state,
)
from tideline.settings import DBT_PROJECT_DIR


def _node(kind, name, parents=(), schema="marts"):
    return {
        "resource_type": kind,
        "name": name,
        "alias": name,
        "schema": schema,
        "fqn": ["tideline", schema, name],
        "config": {"materialized": "table"},
        "depends_on": {"nodes": list(parents)},
    }


MANIFEST = {
    "sources": {
        "source.tideline.events.events": {"schema": "events", "name": "events", "identifier": "events"},
        "source.tideline.commerce.orders": {"schema": "commerce", "name": "orders", "identifier": "orders"},
    },
    "nodes": {
        "model.tideline.stg_events": _node(
            "model", "stg_events", ["source.tideline.events.events"], "staging"
        ),
        "model.tideline.stg_orders": _node(
            "model", "stg_orders", ["source.tideline.commerce.orders"], "staging"
        ),
        "model.tideline.customers": _node("model", "customers", ["model.tideline.stg_orders"]),
        "model.tideline.touches": _node(
            "model", "touches", ["model.tideline.stg_events", "model.tideline.customers"]
        ),
        "test.tideline.not_null_customers": _node("test", "not_null_customers", ["model.tideline.customers"]),
        "test.tideline.rel_touches_customers": _node(
            "test", "rel_touches_customers", ["model.tideline.touches", "model.tideline.stg_events"]
        ),
    },
}
ALL = set(MANIFEST["nodes"])


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute("create schema events; create table events.events (id int)")
    con.execute("create schema commerce; create table commerce.orders (id int, amount double)")
    con.execute("insert into events.events values (1), (2); insert into commerce.orders values (1, 9.5)")
    con.execute("create schema staging; create schema marts")
    for name in ("staging.stg_events", "staging.stg_orders", "marts.customers", "marts.touches"):
        con.execute(f"create table {name} (id int)")
    yield con
    con.close()


def _built(con, plan, run_id="run-1"):
    """Stores the plan's nodes as dbt would after a successful build."""
    status = {uid: ("pass" if uid.startswith("test.") else "success") for uid in plan.build}
    save_state(con, plan, [{"unique_id": uid, "status": s} for uid, s in status.items()], run_id)


def test_a_first_build_builds_everything_and_a_rerun_reuses_everything(con):
    first = plan_build(con, MANIFEST, ALL, "p1")
    assert first.build == ALL and not first.reused
    assert set(first.reasons.values()) == {"never built"}
    _built(con, first)
    again = plan_build(con, MANIFEST, ALL, "p1")
    assert again.nothing_to_build and set(again.reused) == ALL
    assert load_state(con)["model.tideline.customers"].run_id == "run-1"


def test_a_changed_source_rebuilds_only_what_reads_it(con):
    _built(con, plan_build(con, MANIFEST, ALL, "p1"))
    con.execute("update commerce.orders set amount = 10 where id = 1")  # same row count
    plan = plan_build(con, MANIFEST, ALL, "p1")
    assert plan.build == {
        "model.tideline.stg_orders",
        "model.tideline.customers",
        "model.tideline.touches",
        "test.tideline.not_null_customers",
        "test.tideline.rel_touches_customers",
        # reused by its inputs, but read by a test that runs: dbt would drop the test if excluded
        "model.tideline.stg_events",
    }
    assert plan.reasons["model.tideline.stg_events"] == "read by rel_touches_customers, which runs"
    assert plan.reasons["model.tideline.customers"] == "inputs changed"


def test_project_failures_missing_tables_and_full_refresh_rebuild(con):
    _built(con, plan_build(con, MANIFEST, ALL, "p1"))
    assert plan_build(con, MANIFEST, ALL, "p2").build == ALL  # code, rules, vars or date changed
    assert plan_build(con, MANIFEST, ALL, "p1", full_refresh=True).build == ALL
    con.execute("drop table marts.customers")
    plan = plan_build(con, MANIFEST, ALL, "p1")
    assert plan.reasons == {"model.tideline.customers": "table missing"}
    save_state(con, plan, [{"unique_id": "model.tideline.customers", "status": "error"}], "run-2")
    con.execute("create table marts.customers (id int)")
    assert plan_build(con, MANIFEST, ALL, "p1").reasons == {"model.tideline.customers": "last build error"}


def test_a_parent_built_by_the_other_step_counts_with_its_stored_digest(con):
    staging = {"model.tideline.stg_events", "model.tideline.stg_orders"}
    _built(con, plan_build(con, MANIFEST, staging, "p1"))
    marts = ALL - staging
    _built(con, plan_build(con, MANIFEST, marts, "p1"))
    con.execute("insert into commerce.orders values (2, 1)")
    # the staging step has not rebuilt stg_orders yet: its table still holds the old orders, so
    # the marts built from it are still current
    assert plan_build(con, MANIFEST, marts, "p1").nothing_to_build
    rebuilt = plan_build(con, MANIFEST, staging, "p1")
    assert rebuilt.build == {"model.tideline.stg_orders"}
    _built(con, rebuilt, "run-2")
    assert "model.tideline.customers" in plan_build(con, MANIFEST, marts, "p1").build


def test_the_exclusion_names_nodes_by_their_full_names():
    argument = exclude_argument(MANIFEST, ["model.tideline.customers", "test.tideline.not_null_customers"])
    assert argument == "fqn:tideline.marts.customers fqn:tideline.marts.not_null_customers"


def test_the_project_digest_follows_files_and_vars_but_not_the_date(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "a.sql").write_text("select 1")
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "manifest.json").write_text("{}")
    base = project_digest(tmp_path, {"as_of": "2026-01-31", "tideline_warehouse": "/a.duckdb"}, "1.11")
    assert base == project_digest(
        tmp_path, {"as_of": "2026-02-01", "tideline_warehouse": "/b.duckdb"}, "1.11"
    )
    assert base != project_digest(tmp_path, {"as_of": "2026-01-31", "lifecycle_new_days": 20}, "1.11")
    (tmp_path / "target" / "manifest.json").write_text('{"changed": 1}')  # build output: ignored
    assert base == project_digest(tmp_path, {"as_of": "2026-01-31"}, "1.11")
    (tmp_path / "models" / "a.sql").write_text("select 2")
    assert base != project_digest(tmp_path, {"as_of": "2026-01-31"}, "1.11")
    assert as_of_date({"as_of": " 2026-01-31 "}) == "2026-01-31"
    assert as_of_date({"as_of": ""}) == dt.date.today().isoformat()


def test_a_new_as_of_date_rebuilds_what_is_computed_as_of_a_day_and_its_dependants(con):
    manifest = copy.deepcopy(MANIFEST)
    manifest["macros"] = {
        "macro.tideline.as_of_date": {"depends_on": {"macros": []}},
        "macro.tideline.days_between": {"depends_on": {"macros": ["macro.tideline.as_of_date"]}},
    }
    manifest["nodes"]["model.tideline.customers"]["depends_on"]["macros"] = ["macro.tideline.days_between"]
    _built(con, plan_build(con, manifest, ALL, "p1", as_of="2026-01-31"))
    plan = plan_build(con, manifest, ALL, "p1", as_of="2026-02-01")
    assert plan.build == {
        "model.tideline.customers",
        "model.tideline.touches",
        "test.tideline.not_null_customers",
        "test.tideline.rel_touches_customers",
        "model.tideline.stg_events",  # read by the relationships test, which runs
    }
    assert "model.tideline.stg_orders" in plan.reused


def test_the_projects_models_read_no_clock_and_no_files():
    """Reuse is sound only if a model is a function of its sources, parents, project and vars."""
    manifest = json.loads((DBT_PROJECT_DIR / "target" / "manifest.json").read_text())
    clock_or_files = re.compile(
        r"\b(current_timestamp|current_date|run_started_at)\b|"
        r"\b(now|get_current_timestamp|read_csv\w*|read_parquet|read_json\w*|random|uuid|gen_random_uuid)\s*\(",
        re.IGNORECASE,
    )
    comments = re.compile(r"--[^\n]*|/\*.*?\*/|\{#.*?#\}", re.DOTALL)

    offenders = [
        uid
        for uid, node in manifest["nodes"].items()
        if node["resource_type"] in ("model", "snapshot")
        and clock_or_files.search(comments.sub("", node["raw_code"]))
    ]
    assert offenders == []
    # the one clock read is the as-of macro's default, which the project digest resolves
    macros = [m for m in manifest["macros"].values() if m["package_name"] == "tideline"]
    users = sorted(m["name"] for m in macros if clock_or_files.search(comments.sub("", m["macro_sql"])))
    assert users == ["as_of_date"]


def test_a_sources_declared_bookkeeping_columns_do_not_count_as_a_change(con):
    manifest = copy.deepcopy(MANIFEST)
    manifest["sources"]["source.tideline.commerce.orders"]["meta"] = {"fingerprint_ignores": ["amount"]}
    _built(con, plan_build(con, manifest, ALL, "p1"))
    con.execute("update commerce.orders set amount = 99")
    assert plan_build(con, manifest, ALL, "p1").nothing_to_build
    con.execute("insert into commerce.orders values (7, 1)")
    assert "model.tideline.stg_orders" in plan_build(con, manifest, ALL, "p1").build


def test_a_source_marked_ignore_does_not_count_at_all(con):
    manifest = copy.deepcopy(MANIFEST)
    manifest["sources"]["source.tideline.commerce.orders"]["meta"] = {"fingerprint": "ignore"}
    _built(con, plan_build(con, manifest, ALL, "p1"))
    con.execute("insert into commerce.orders values (7, 1)")
    assert plan_build(con, manifest, ALL, "p1").nothing_to_build
