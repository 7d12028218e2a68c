"""Each warehouse has its own state folder, and every run of every job is tagged with its raw dir,
warehouse and as-of date (issue 10, part 2)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from orchestration.definitions import build_definitions
from tideline.settings import Settings

TAGS = ("tideline/raw_dir", "tideline/warehouse", "tideline/as_of")


def _state_paths(defs: dg.Definitions) -> dict[str, str]:
    resources = defs.resources
    return {
        "models": resources["ml"].models_dir,
        "reports": resources["reports"].reports_dir,
        "bi": resources["warehouse"].bi_path,
        **({"logs": resources["run_log"].logs_dir} if "run_log" in resources else {}),
    }


def test_two_warehouses_in_one_home_share_no_state(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = Settings(home, home / "warehouse.duckdb", tmp_path / "demo", "2026-01-01")
    second = Settings(home, tmp_path / "mine" / "shop.duckdb", tmp_path / "mine-raw", "2026-01-31")
    a, b = _state_paths(build_definitions(first)), _state_paths(build_definitions(second))
    for name in ("models", "reports", "bi", "logs"):
        assert a.get(name) is not None and a[name] != b[name], name
        assert not Path(b[name]).is_relative_to(Path(a[name])), name
    # the default warehouse keeps the paths the README shows; another one gets its own folder
    assert a["models"] == str(home / "models") and a["reports"] == str(home / "reports")
    assert Path(b["models"]).parent == second.state_dir
    assert second.state_dir.parent == home / "warehouses"
    assert second.state_dir.name.startswith("shop-")
    assert first.outbox_dir == home / "outbox" and second.outbox_dir == second.state_dir / "outbox"
    assert first.instance_dir == home / "dagster" and second.instance_dir == second.state_dir / "dagster"
    assert first.bi_path == home / "bi" / "warehouse.duckdb"


def test_same_file_name_in_two_folders_still_gets_two_state_folders(tmp_path: Path) -> None:
    from tideline.settings import state_dir_for

    home = tmp_path / "home"
    one = state_dir_for(home, tmp_path / "a" / "warehouse.duckdb")
    two = state_dir_for(home, tmp_path / "b" / "warehouse.duckdb")
    assert one != two and one.parent == two.parent == home / "warehouses"


def test_an_explicit_dagster_home_is_shared_and_the_rest_stays_apart(tmp_path: Path) -> None:
    shared = tmp_path / "dagster"
    first = Settings(tmp_path, tmp_path / "a.duckdb", tmp_path, "", dagster_home=shared)
    second = Settings(tmp_path, tmp_path / "b.duckdb", tmp_path, "", dagster_home=shared)
    assert first.instance_dir == second.instance_dir == shared
    assert first.models_dir != second.models_dir


def test_every_job_and_every_schedule_and_sensor_run_carries_the_tags(tmp_path: Path) -> None:
    raw, warehouse = tmp_path / "raw", tmp_path / "w.duckdb"
    defs = build_definitions(Settings(tmp_path, warehouse, raw, "2026-02-28"))
    expected = dict(zip(TAGS, (str(raw), str(warehouse), "2026-02-28"), strict=True))
    jobs = [job.name for job in defs.resolve_all_job_defs() if not job.name.startswith("__")]
    assert {"tideline_pipeline", "tideline_daily", "tideline_retrain"} <= set(jobs)
    for name in jobs:
        assert expected.items() <= defs.resolve_job_def(name).run_tags.items(), name
    # a schedule's or sensor's run request launches its job, whose run tags every run gets
    schedules = [defs.resolve_schedule_def(s.name) for s in defs.schedules]
    sensors = [defs.resolve_sensor_def(s.name) for s in defs.sensors]
    targets = [s.job_name for s in schedules] + [j.name for s in sensors if s.has_jobs for j in s.jobs]
    assert "tideline_daily" in targets
    for name in targets:
        assert expected.items() <= defs.resolve_job_def(name).run_tags.items(), name
        # the schedule and sensor daemons and the UI's launchpad read run tags from the job's snapshot
        assert expected.items() <= defs.resolve_job_def(name).get_job_snapshot().run_tags.items(), name


def test_runs_as_of_today_are_tagged_so(tmp_path: Path) -> None:
    defs = build_definitions(Settings(tmp_path, tmp_path / "w.duckdb", tmp_path, ""))
    assert defs.resolve_job_def("tideline_pipeline").run_tags.get("tideline/as_of") == "today"


def test_the_bi_copy_is_published_last_after_every_other_asset(tmp_path: Path) -> None:
    bi_key = dg.AssetKey(["serving", "bi_warehouse"])
    defs = build_definitions(Settings(tmp_path, tmp_path / "w.duckdb", tmp_path, ""))
    graph = defs.resolve_asset_graph()
    upstream = graph.get(bi_key).parent_keys
    everything = {k for k in graph.get_all_asset_keys() if graph.get(k).is_materializable} - {bi_key}
    ancestors = set(upstream)
    frontier = list(upstream)
    while frontier:
        for parent in graph.get(frontier.pop()).parent_keys:
            if parent not in ancestors:
                ancestors.add(parent)
                frontier.append(parent)
    assert everything <= ancestors  # nothing runs after it: it publishes a complete run
    for job in ("tideline_pipeline", "tideline_daily", "tideline_retrain"):
        assert bi_key in defs.resolve_job_def(job).asset_layer.executable_asset_keys, job
