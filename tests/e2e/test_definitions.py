"""The Dagster code location: what it defines, how the schedule fires, and that checks block."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import dagster as dg
import pytest

from activation.config import bindings_from_manifest
from orchestration.definitions import build_definitions
from tests.helpers import write_csv
from tideline.demo.local import local_destinations
from tideline.settings import Settings

MANIFEST = Path(__file__).resolve().parents[2] / "dbt_project" / "target" / "manifest.json"


def _settings(tmp_path: Path, raw: Path, as_of: str = "2025-06-30") -> Settings:
    return Settings(home=tmp_path, warehouse=tmp_path / "warehouse.duckdb", raw_dir=raw, as_of=as_of)


@pytest.fixture(scope="module")
def defs(tmp_path_factory: pytest.TempPathFactory) -> dg.Definitions:
    """The code location on an empty landing zone (read, never run: shared by the tests below)."""
    home = tmp_path_factory.mktemp("definitions")
    return build_definitions(_settings(home, home))


def test_definitions_load_with_layers_and_checks(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    for key in (
        "landing/commerce_orders",
        "landing/crm_contacts",
        "landing/events",
        "staging/stg_commerce__orders",
        "intermediate/int_accounts_resolved",
        "marts/dim_customers",
        "marts/customer_rfm",
        "marts/customer_lifecycle",
        "marts/customer_tags",
        "marts/tag_health",
        "marts/rejects",
        "marts/customer_id_map",
        "marts/customer_tags_rules",
        "marts/customer_tags_scored",
        "reference/channel_costs",
    ):
        assert key in keys, key
    groups = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert groups["staging/stg_commerce__orders"] == "staging"
    assert groups["intermediate/int_accounts_resolved"] == "intermediate"
    assert groups["marts/dim_customers"] == "marts"
    assert groups["landing/commerce_orders"] == "landing"
    # the landing asset feeds the dbt sources
    parents = {
        p.to_user_string() for p in graph.get(dg.AssetKey(["staging", "base_commerce__orders"])).parent_keys
    }
    assert "landing/commerce_orders" in parents

    checks = {c for c in graph.asset_check_keys}
    dim_checks = {c.name for c in checks if c.asset_key == dg.AssetKey(["marts", "dim_customers"])}
    assert "unique_dim_customers_customer_id" in dim_checks
    specs = {key.name: graph.get_check_spec(key) for key in checks}
    assert specs["unique_dim_customers_customer_id"].blocking is True  # error severity blocks downstream
    assert specs["rejects_reported"].blocking is False
    assert specs["orders_present"].blocking is True


def _selected(defs: dg.Definitions, job_name: str) -> set[str]:
    """The asset keys a job materialises."""
    return {k.to_user_string() for k in defs.resolve_job_def(job_name).asset_layer.selected_asset_keys}


def test_schedules_and_sensors_run_the_jobs_they_are_meant_to(defs: dg.Definitions) -> None:
    """Each schedule and sensor targets its own job, and each job selects its own assets: a schedule
    pointed at the wrong job, or a job that selects too much or too little, fails here."""
    repository = defs.get_repository_def()
    models = {"ml/churn_model", "ml/propensity_model", "ml/clv_model"}
    everything = _selected(defs, "tideline_pipeline")
    graph = defs.resolve_asset_graph()
    assert everything == {
        k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).is_materializable
    }
    assert models < everything

    schedules = {s.name: s for s in repository.schedule_defs}
    daily, weekly = schedules.pop("daily_refresh"), schedules.pop("weekly_retrain")
    assert (daily.cron_schedule, daily.job_name) == ("0 6 * * *", "tideline_daily")
    assert (weekly.cron_schedule, weekly.job_name) == ("0 4 * * 1", "tideline_retrain")
    # daily: everything but training (scoring with the approved models included)
    assert _selected(defs, "tideline_daily") == everything - models
    # weekly: the models, the scores and what is built from scores; no reload, no rebuild of the rest
    retrain = _selected(defs, "tideline_retrain")
    assert models | {"ml/customer_scores", "marts/high_propensity_buyers"} <= retrain
    assert not any(k.startswith(("landing/", "staging/", "intermediate/")) for k in retrain)
    assert "marts/dim_customers" not in retrain and retrain < everything
    # the journeys' every-minute schedule runs their ticks (one asset per config/journeys file)
    ticks = schedules.pop("journey_ticks_every_minute")
    journeys = {f"journeys/{p.stem}" for p in (MANIFEST.parents[2] / "config" / "journeys").glob("*.yml")}
    assert (ticks.cron_schedule, ticks.job_name) == ("* * * * *", "journey_ticks")
    assert journeys and _selected(defs, "journey_ticks") == journeys <= everything
    # a sync's own schedule (activation.yml `schedule:`) runs that sync and nothing else
    for schedule in schedules.values():
        sync_key = schedule.job_name.removeprefix("sync__")
        assert schedule.job_name == f"sync__{sync_key}", schedule.name
        assert _selected(defs, schedule.job_name) == {f"activation/{sync_key}"}, schedule.name
    # a tick asks for a run of the schedule's own job (None: the job the schedule targets)
    with dg.instance_for_test() as instance:
        for schedule in (daily, weekly):
            result = schedule.evaluate_tick(dg.build_schedule_context(instance=instance))
            assert result.run_requests, schedule.name
            assert all(r.job_name in (None, schedule.job_name) for r in result.run_requests), schedule.name

    # the deferred-messages sensor reruns message syncs only: every one of them, nothing else
    sensors = {s.name: s for s in repository.sensor_defs}
    assert set(sensors) == {"deferred_messages"}
    assert [job.name for job in sensors["deferred_messages"].jobs] == ["activation_deferred"]
    messages = {
        f"activation/{b.sync_key}"
        for b in bindings_from_manifest(MANIFEST)
        if b.mode == "message" and b.channel
    }
    assert messages and _selected(defs, "activation_deferred") == messages


@pytest.mark.slow  # runs the pipeline job through Dagster
def test_a_failing_blocking_check_stops_everything_downstream(tmp_path: Path) -> None:
    """No orders at all: orders_present fails (error), so no dbt model is built."""
    raw = tmp_path / "raw"
    write_csv(raw / "crm/contacts/c.csv", [{"customer_id": "c1", "email": "a@x.io"}])
    defs = build_definitions(_settings(tmp_path, raw))
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("tideline_pipeline").execute_in_process(
            instance=instance, raise_on_error=False
        )
        materialized = {
            e.asset_key.to_user_string()
            for e in result.all_events
            if e.event_type_value == "ASSET_MATERIALIZATION"
        }
    assert not result.success
    check = next(
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.event_specific_data.check_name == "orders_present"
    )
    assert check.passed is False
    assert "landing/commerce_orders" in materialized
    assert not any(k.startswith(("staging/", "marts/")) for k in materialized)


@pytest.mark.slow
def test_full_materialize_of_the_asset_graph(tmp_path: Path) -> None:
    """Every asset materialised and every check evaluated on a small landing zone, through Dagster."""
    from tests.dbt.test_customer_marts import write_landing_zone

    raw = tmp_path / "raw"
    write_landing_zone(raw)
    settings = replace(_settings(tmp_path, raw), local_destinations=True)
    with dg.instance_for_test() as instance, local_destinations(tmp_path, os.environ) as local:
        defs = build_definitions(settings, os.environ, local.values)  # the sinks' addresses, as data
        result = defs.resolve_job_def("tideline_pipeline").execute_in_process(instance=instance)
        assert result.success
        graph = defs.resolve_asset_graph()
        for key in graph.get_all_asset_keys():
            if graph.get(key).is_materializable:
                assert instance.get_latest_materialization_event(key) is not None, key
        dim = instance.get_latest_materialization_event(dg.AssetKey(["marts", "dim_customers"]))
        metadata = dim.asset_materialization.metadata
        # default vars: the three test@example.com accounts merge (limit 20), so 11 - 2 customers
        assert metadata["dagster/row_count"].value == 9
        assert "preview" in metadata and "@" not in metadata["preview"].value  # no emails in metadata
        evaluations = [
            e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
        ]
        rejects = next(e for e in evaluations if e.check_name == "rejects_reported")
        # the rows test_customer_marts.test_every_malformed_row_reaches_rejects_with_a_reason lists
        assert rejects.passed is False and rejects.metadata["rejects"].value == 19
        # 11 customers are too few to train a model: each says so as a warning, and the run goes on
        untrained = [e for e in evaluations if e.check_name == "beats_baseline"]
        assert len(untrained) == 3
        assert all(not e.passed and e.severity == dg.AssetCheckSeverity.WARN for e in untrained)
        assert all("not trained" in e.description for e in untrained)
        others = [e for e in evaluations if e.check_name not in ("rejects_reported", "beats_baseline")]
        assert all(e.passed for e in others)
        assert len(evaluations) > 50


@pytest.mark.slow
def test_a_rerun_reuses_the_dbt_models_whose_inputs_did_not_change(tmp_path: Path) -> None:
    """Through Dagster: a second build reuses every model and test (outputs and check results
    still reach Dagster), and a new orders file rebuilds what reads the orders, not the events."""
    from orchestration.dbt import tideline_dbt_assets
    from tests.dbt.test_customer_marts import write_landing_zone

    raw = tmp_path / "raw"
    write_landing_zone(raw)
    defs = build_definitions(_settings(tmp_path, raw))
    graph = defs.resolve_asset_graph()
    # landing.files and landing.loads are dbt sources, not assets a run materialises
    landing = [
        k for k in graph.get_all_asset_keys() if k.path[0] == "landing" and graph.get(k).is_materializable
    ]
    selection = landing + list(tideline_dbt_assets.keys)
    job = defs.resolve_job_def("tideline_pipeline")

    def build(instance: dg.DagsterInstance) -> tuple[dict[str, bool], list]:
        result = job.execute_in_process(instance=instance, asset_selection=selection)
        assert result.success
        reused = {
            e.asset_key.to_user_string(): "reused" in e.step_materialization_data.materialization.metadata
            for e in result.get_asset_materialization_events()
            if e.asset_key in tideline_dbt_assets.keys
        }
        checks = [
            e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
        ]
        return reused, checks

    with dg.instance_for_test() as instance:
        first, first_checks = build(instance)
        assert len(first) == len(tideline_dbt_assets.keys) and not any(first.values())
        second, second_checks = build(instance)
        assert set(second) == set(first) and all(second.values())  # every model reused, all reported
        assert {c.check_name: c.passed for c in second_checks} == {
            c.check_name: c.passed for c in first_checks
        }
        dbt_tests = {c.check_name for c in first_checks if "unique_id" in c.metadata}  # not Python checks
        assert len(dbt_tests) > 300
        assert all("reused" in c.metadata for c in second_checks if c.check_name in dbt_tests)

        write_csv(
            raw / "commerce/orders/2025c.csv",
            [
                {
                    "order_id": "o-new",
                    "customer_id": "c4",
                    "ordered_at": "2025-06-01T10:00:00Z",
                    "amount": "12.50",
                }
            ],
        )
        third, _ = build(instance)
        assert third["staging/stg_commerce__orders"] is False  # rebuilt: it reads the orders
        assert third["marts/customer_rfm"] is False
        assert third["staging/stg_events__events"] is True  # reads no orders: reused
