"""`tideline run --full-refresh` reaches the landing load and both dbt builds: the run config it sends
is valid for the pipeline job and sets `full_refresh` on all three ops, and each dbt asset then
passes `--full-refresh` to dbt (and not otherwise)."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration import dbt as dbt_module
from orchestration.definitions import build_definitions
from tideline.commands.run import FULL_REFRESH_OPS, PIPELINE_JOB, full_refresh_ops
from tideline.settings import Settings


def test_the_full_refresh_run_config_is_valid_for_the_pipeline_job(tmp_path: Path) -> None:
    defs = build_definitions(
        Settings(tmp_path, tmp_path / "warehouse.duckdb", tmp_path / "raw", "2026-02-28")
    )
    job = defs.resolve_job_def(PIPELINE_JOB)
    ops = full_refresh_ops()
    assert (
        set(ops)
        == {"landing_zone", "tideline_dbt_assets", "tideline_dbt_scored_assets"}
        == set(FULL_REFRESH_OPS)
    )
    validated = dg.validate_run_config(job, {"ops": ops})["ops"]
    assert all(validated[op]["config"] == {"full_refresh": True} for op in FULL_REFRESH_OPS)
    default = dg.validate_run_config(job, {})["ops"]
    assert all(default[op]["config"] == {"full_refresh": False} for op in FULL_REFRESH_OPS)


class _Stop(Exception):
    """Raised by the stand-in dbt resource: the arguments are all the test needs."""


class _RecordingDbt:
    def __init__(self) -> None:
        self.args: list[str] = []

    def cli(self, args, **_):  # noqa: ANN001, ANN201 - DbtCliResource.cli's shape
        self.args = list(args)
        raise _Stop


class _Warehouse:
    memory_limit, threads, temp_directory = "", None, ""
    on_postgres = False  # WarehouseResource on the duckdb target

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def wait_until_free(self) -> None:
        return None

    @contextlib.contextmanager
    def connect(self, read_only: bool = False):  # noqa: ANN201 - WarehouseResource.connect's shape
        con = duckdb.connect(self.path, read_only=read_only)
        try:
            yield con
        finally:
            con.close()


class _Pipeline:
    as_of = "2026-02-28"


class _RunLog:
    echo = False

    def path(self, run_id: str) -> Path:
        return Path("/tmp") / f"{run_id}.log"


class _Context:
    """The first dbt step selecting all of its models and tests, on a new warehouse: every node is
    to be built, so dbt is started."""

    run_id = "r"
    log = logging.getLogger("test_full_refresh_run_config")
    assets_def = dbt_module.tideline_dbt_assets
    selected_asset_keys = set(dbt_module.tideline_dbt_assets.keys)
    selected_asset_check_keys = set(dbt_module.tideline_dbt_assets.check_keys)


@pytest.mark.parametrize("full_refresh", [False, True])
def test_each_dbt_build_passes_full_refresh_to_dbt_only_when_asked(
    full_refresh: bool, tmp_path: Path
) -> None:
    dbt = _RecordingDbt()
    warehouse = _Warehouse(tmp_path / "w.duckdb")
    with pytest.raises(_Stop):
        next(dbt_module._run_dbt(_Context(), dbt, warehouse, _Pipeline(), _RunLog(), full_refresh))
    assert dbt.args[0] == "build" and ("--full-refresh" in dbt.args) is full_refresh
