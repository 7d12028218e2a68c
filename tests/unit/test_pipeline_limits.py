"""The pipeline's DuckDB limits: one memory limit, thread count and spill folder from the settings,
applied to every connection of the warehouse resource and handed to dbt's profile."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestration.dbt import dbt_vars
from orchestration.resources import PipelineSettings, WarehouseResource
from tideline.settings import DEFAULT_MEMORY_CAP_MB, Settings, default_memory_limit


def test_the_default_is_a_bounded_share_of_the_machine(tmp_path: Path) -> None:
    settings = Settings.from_env({"TIDELINE_HOME": str(tmp_path)})
    mb = int(re.fullmatch(r"(\d+)MB", settings.pipeline_memory_limit).group(1))
    assert settings.pipeline_memory_limit == default_memory_limit() and 256 <= mb <= DEFAULT_MEMORY_CAP_MB
    assert settings.pipeline_threads >= 1
    assert settings.pipeline_temp_dir == settings.state_dir / "duckdb_spill"


def test_the_environment_sets_them_and_a_bad_size_is_named(tmp_path: Path) -> None:
    env = {"TIDELINE_HOME": str(tmp_path), "TIDELINE_MEMORY_LIMIT": "1GB", "TIDELINE_THREADS": "1"}
    settings = Settings.from_env({**env, "TIDELINE_TEMP_DIR": str(tmp_path / "spill")})
    assert (settings.pipeline_memory_limit, settings.pipeline_threads) == ("1GB", 1)
    assert settings.pipeline_temp_dir == tmp_path / "spill"
    assert Settings.from_env(settings.environment()).memory_limit == "1GB"  # a child process sees the same
    with pytest.raises(ValueError, match="TIDELINE_MEMORY_LIMIT='lots' is not a size"):
        Settings.from_env({**env, "TIDELINE_MEMORY_LIMIT": "lots"})


def test_every_connection_and_dbt_get_the_limits(tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    resource = WarehouseResource(
        path=str(tmp_path / "w.duckdb"), memory_limit="300MB", threads=1, temp_directory=str(spill)
    )
    with resource.connect() as con:
        memory, threads, temp = con.execute(
            "select current_setting('memory_limit'), current_setting('threads'), current_setting('temp_directory')"
        ).fetchone()
    assert memory.startswith("286.1") and threads == 1 and temp == str(spill)  # 300MB is 286.1 MiB
    assert dbt_vars(PipelineSettings(raw_dir=str(tmp_path)), resource) == {
        "tideline_warehouse": str(tmp_path / "w.duckdb"),
        "tideline_memory_limit": "300MB",
        "tideline_duckdb_threads": "1",
        "tideline_temp_dir": str(spill),
    }
