"""The Dagster instance's storage setting (TIDELINE_DAGSTER_STORAGE): which dagster.yaml the instance
folder gets, the PostgreSQL variant kept the same as the repo's dagster.yaml apart from its storage,
and the clear refusals when postgres is chosen without a usable TIDELINE_DAGSTER_PG_URL (never
repeating the URL, which may hold a password). The run on a real server:
tests/integration/test_dagster_postgres.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config

from tideline.cli import main
from tideline.commands.run import prepare_dagster_home, stores_on_postgres
from tideline.settings import DAGSTER_INSTANCE_CONFIGS, REPO_ROOT, Settings

VARIANT = REPO_ROOT / "config" / "dagster" / "postgres.yaml"
SECRET = "s3cr3t-pw"
URL = f"postgresql+psycopg2://dagster:{SECRET}@db.internal:5432/dagster"


def settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"TIDELINE_HOME": str(tmp_path / "home"), **env})


def test_the_postgres_variant_is_the_repo_dagster_yaml_with_postgres_storage() -> None:
    base = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    variant = yaml.safe_load(VARIANT.read_text())
    assert variant.pop("storage") == {"postgres": {"postgres_url": {"env": "TIDELINE_DAGSTER_PG_URL"}}}
    assert variant == base  # pools, telemetry: one set of rules whichever storage
    assert "storage" not in base  # SQLite files in the instance folder
    for path in (REPO_ROOT / "dagster.yaml", VARIANT):  # both pass Dagster's instance schema
        folder = path.parent
        config, _ = dagster_instance_config(str(folder), path.name)
        assert config["concurrency"] == {"pools": {"default_limit": 1}}


def test_sqlite_is_the_default_and_postgres_picks_the_variant(tmp_path: Path) -> None:
    assert settings(tmp_path).dagster_storage == "sqlite"
    assert settings(tmp_path).instance_config == REPO_ROOT / "dagster.yaml"
    chosen = settings(tmp_path, TIDELINE_DAGSTER_STORAGE=" Postgres ", TIDELINE_DAGSTER_PG_URL=URL)
    assert chosen.dagster_storage == "postgres" and chosen.instance_config == VARIANT
    # a child process the CLI starts (tideline ui) resolves the same choice
    again = Settings.from_env({**chosen.environment(), "TIDELINE_DAGSTER_PG_URL": URL})
    assert again.dagster_storage == "postgres"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("", "needs TIDELINE_DAGSTER_PG_URL"),
        ("   ", "needs TIDELINE_DAGSTER_PG_URL"),
        (f"postgresql://dagster:{SECRET}@db.internal:5432/dagster", "psycopg2"),
        (f"mysql://dagster:{SECRET}@db.internal/dagster", "must start with postgresql+psycopg2://"),
        (f"postgresql+psycopg2://dagster:{SECRET}@db.internal:5432", "names no database"),
        (f"postgresql+psycopg2://dagster:{SECRET}@db.internal:port/dagster", "port is not a number"),
        (f"postgresql+psycopg2://dagster:{SECRET}@/dagster", "names no host"),
    ],
)
def test_postgres_without_a_usable_url_is_refused_without_showing_it(
    tmp_path: Path, url: str, says: str
) -> None:
    with pytest.raises(ValueError) as refused:
        settings(tmp_path, TIDELINE_DAGSTER_STORAGE="postgres", TIDELINE_DAGSTER_PG_URL=url)
    assert says in str(refused.value) and SECRET not in str(refused.value)


def test_a_unix_socket_host_and_libpq_options_are_accepted(tmp_path: Path) -> None:
    url = "postgresql+psycopg2://dagster@/dagster?host=/var/run/postgresql&sslmode=disable"
    assert settings(
        tmp_path, TIDELINE_DAGSTER_STORAGE="postgres", TIDELINE_DAGSTER_PG_URL=url
    ).dagster_storage


def test_an_unknown_storage_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"TIDELINE_DAGSTER_STORAGE='mysql' is not sqlite or postgres"):
        settings(tmp_path, TIDELINE_DAGSTER_STORAGE="mysql")


def test_tideline_run_refuses_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TIDELINE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TIDELINE_DAGSTER_STORAGE", "postgres")
    monkeypatch.delenv("TIDELINE_DAGSTER_PG_URL", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main(["run", "--raw-dir", str(tmp_path / "not-there")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tideline: TIDELINE_DAGSTER_STORAGE=postgres needs TIDELINE_DAGSTER_PG_URL")
    assert not (tmp_path / "home").exists()  # nothing was started or written


def test_the_own_instance_follows_the_setting_both_ways(tmp_path: Path) -> None:
    sqlite = settings(tmp_path)
    postgres = settings(tmp_path, TIDELINE_DAGSTER_STORAGE="postgres", TIDELINE_DAGSTER_PG_URL=URL)
    target = prepare_dagster_home(sqlite) / "dagster.yaml"
    assert not stores_on_postgres(target)
    assert prepare_dagster_home(postgres) == target.parent
    assert target.read_bytes() == DAGSTER_INSTANCE_CONFIGS["postgres"].read_bytes()
    assert stores_on_postgres(target) and URL not in target.read_text()
    prepare_dagster_home(sqlite)
    assert target.read_bytes() == (REPO_ROOT / "dagster.yaml").read_bytes()


def test_a_shared_instance_keeps_its_file_and_is_refused_when_it_stores_elsewhere(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    own = "telemetry:\n  enabled: false\n"
    (shared / "dagster.yaml").write_text(own)
    env = {
        "DAGSTER_HOME": str(shared),
        "TIDELINE_DAGSTER_STORAGE": "postgres",
        "TIDELINE_DAGSTER_PG_URL": URL,
    }
    with pytest.raises(ValueError, match=r"keeps runs in SQLite: copy config/dagster/postgres.yaml"):
        prepare_dagster_home(settings(tmp_path, **env))
    assert (shared / "dagster.yaml").read_text() == own
    # its own postgres storage, however written, is kept as it is
    custom = "run_storage:\n  module: dagster_postgres.run_storage\n  class: PostgresRunStorage\n"
    (shared / "dagster.yaml").write_text(custom)
    assert prepare_dagster_home(settings(tmp_path, **env)) == shared
    assert (shared / "dagster.yaml").read_text() == custom
    # a new shared instance gets the variant
    fresh = tmp_path / "fresh"
    prepare_dagster_home(settings(tmp_path, **{**env, "DAGSTER_HOME": str(fresh)}))
    assert (fresh / "dagster.yaml").read_bytes() == VARIANT.read_bytes()


def test_an_unreachable_server_is_one_sentence_without_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "raw").mkdir()
    monkeypatch.setenv("TIDELINE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TIDELINE_DAGSTER_STORAGE", "postgres")
    monkeypatch.setenv(
        "TIDELINE_DAGSTER_PG_URL", f"postgresql+psycopg2://dagster:{SECRET}@127.0.0.1:{port}/dagster"
    )
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main(["run", "--raw-dir", str(tmp_path / "raw")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "tideline: cannot reach the Dagster run storage on PostgreSQL (TIDELINE_DAGSTER_PG_URL): "
    )
    assert str(port) in err and SECRET not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "home" / "warehouse.duckdb").exists()  # stopped before the run
