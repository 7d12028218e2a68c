"""The day counts models read from dbt vars are checked by one macro, positive_var(): a value that
is not a positive whole number stops the compile with an error naming the var, where `| int` used
to turn 2.5 into 2 and build on."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tideline.dbt_manifest import dbt_executable
from tideline.settings import DBT_PROJECT_DIR


def _compile(tmp_path: Path, select: str, variables: dict) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "TIDELINE_WAREHOUSE": str(tmp_path / "w.duckdb"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    command = [dbt_executable(), "compile", "--quiet", "--select", select, "--vars", json.dumps(variables)]
    command += ["--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(tmp_path / "target")]
    return subprocess.run(command, cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True)


@pytest.mark.slow
def test_a_day_count_that_is_not_a_positive_whole_number_stops_the_compile(tmp_path: Path) -> None:
    done = _compile(tmp_path, "campaign_alert_rates", {"alert_window_days": 2.5})
    assert done.returncode != 0
    assert (
        "var alert_window_days must be a positive whole number (dbt_project.yml vars:, or --vars), got '2.5'"
        in done.stdout + done.stderr
    )
    assert _compile(tmp_path, "campaign_alert_rates", {"alert_window_days": 3}).returncode == 0
