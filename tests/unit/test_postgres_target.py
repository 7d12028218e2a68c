"""The target setting (TIDELINE_TARGET, `tideline run --target`) and its refusals: the PostgreSQL
warehouse comes from the TIDELINE_PG_* variables dbt's profile reads; a missing one, a bad port
or a server that cannot be reached is one sentence before anything runs."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

import pytest

from tideline.cli import main
from tideline.commands.run import settings_from
from tideline.settings import TAG_WAREHOUSE, Settings

PG = {
    "TIDELINE_PG_HOST": "127.0.0.1",
    "TIDELINE_PG_USER": "tideline",
    "TIDELINE_PG_DATABASE": "shop",
}


def test_duckdb_is_the_default_and_postgres_needs_host_user_and_database(tmp_path: Path) -> None:
    home = {"TIDELINE_HOME": str(tmp_path)}
    assert Settings.from_env(home).target == "duckdb"
    with pytest.raises(ValueError) as refused:
        Settings.from_env({**home, "TIDELINE_TARGET": "postgres", "TIDELINE_PG_HOST": "db"})
    message = str(refused.value)
    assert "needs TIDELINE_PG_USER, TIDELINE_PG_DATABASE (" in message
    assert "TIDELINE_PG_HOST," not in message and "\n" not in message
    with pytest.raises(ValueError, match="TIDELINE_TARGET or --target"):
        Settings.from_env({**home, "TIDELINE_TARGET": "oracle"})
    with pytest.raises(ValueError, match="TIDELINE_PG_PORT='54x' is not a port number"):
        Settings.from_env({**home, **PG, "TIDELINE_TARGET": "postgres", "TIDELINE_PG_PORT": "54x"})


def test_a_postgres_warehouse_has_its_own_state_folder_tags_and_workspace(tmp_path: Path) -> None:
    secret = "s3cret-Pa55"
    env = {
        "TIDELINE_HOME": str(tmp_path),
        **PG,
        "TIDELINE_TARGET": "postgres",
        "TIDELINE_PG_PASSWORD": secret,
    }
    settings = Settings.from_env(env)
    assert settings.postgres.port == 5432
    assert settings.warehouse_label == "postgresql://tideline@127.0.0.1:5432/shop"
    assert settings.run_tags()[TAG_WAREHOUSE] == settings.warehouse_label
    assert settings.state_dir.parent == tmp_path / "warehouses"
    assert settings.state_dir.name.startswith("postgres-shop-")
    assert settings.landing_workspace == settings.state_dir / "landing_workspace.duckdb"
    other = Settings.from_env({**env, "TIDELINE_PG_DATABASE": "other"})
    assert other.state_dir != settings.state_dir
    assert secret not in repr(settings) and secret not in str(settings.environment())
    assert (
        Settings.from_env({"TIDELINE_HOME": str(tmp_path)}).landing_workspace == tmp_path / "warehouse.duckdb"
    )


def test_the_flag_wins_over_the_environment(tmp_path: Path) -> None:
    env = {"TIDELINE_HOME": str(tmp_path), **PG, "TIDELINE_TARGET": "postgres"}
    args = argparse.Namespace(target="duckdb", home=None, warehouse=None, raw_dir=None, as_of=None)
    assert settings_from(args, env).target == "duckdb"
    args.target = "postgres"
    assert settings_from(args, {"TIDELINE_HOME": str(tmp_path), **PG}).postgres is not None


def test_a_run_on_an_unreachable_server_is_one_sentence_with_libpqs_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    raw = tmp_path / "raw"
    raw.mkdir()
    code = main_with_env(
        ["run", "--target", "postgres", "--raw-dir", str(raw), "--home", str(tmp_path / "home")],
        {**PG, "TIDELINE_PG_PORT": str(port), "TIDELINE_PG_PASSWORD": "never-shown-42"},
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("tideline: cannot reach the PostgreSQL warehouse postgresql://tideline@127.0.0.1:")
    assert "Connection refused" in err and "--target duckdb" in err
    assert "never-shown-42" not in err and len(err.strip().splitlines()) == 1
    assert not list((tmp_path / "home").rglob("*.duckdb"))  # refused before any warehouse was opened


def main_with_env(argv: list[str], extra: dict[str, str]) -> int:
    """The CLI's main() with `extra` in its environment (main reads os.environ itself)."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in extra.items():
            patch.setenv(name, value)
        return main(argv)
