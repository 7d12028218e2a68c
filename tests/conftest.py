"""Shared fixtures: write small landing zones, build them with the real loader and dbt; a test-only
tracking secret for the whole session (there is no default secret; refusal tests unset it)."""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import Warehouse, build_warehouse
from tideline.dbt_manifest import parse_dbt_project
from tideline.settings import DBT_PROJECT_DIR

# Long and varied enough for activation.tokens.check_secret; used only by tests, never a default.
TEST_TRACKING_SECRET = "tideline-tests-only-tracking-secret-9f3c1a7e5b"


@pytest.fixture(scope="session", autouse=True)
def tracking_secret_for_tests() -> Iterator[str]:
    """TIDELINE_TRACKING_SECRET for every test (and the processes they start); tests that check the
    refusal without it unset it with monkeypatch."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TIDELINE_TRACKING_SECRET", TEST_TRACKING_SECRET)
        yield TEST_TRACKING_SECRET


@pytest.fixture(scope="session", autouse=True)
def dbt_manifest() -> Path:
    """The dbt manifest the Dagster definitions are built from (dbt parse, once per session; under
    pytest-xdist once per worker, one worker at a time: they share dbt_project/target)."""
    lock = DBT_PROJECT_DIR / "target" / ".parse.lock"
    lock.parent.mkdir(exist_ok=True)
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        return parse_dbt_project()


@pytest.fixture
def make_warehouse(tmp_path: Path) -> Callable[..., Warehouse]:
    def _make(raw_dir: Path, as_of: str, **extra_vars) -> Warehouse:
        return build_warehouse(raw_dir, tmp_path / "warehouse.duckdb", as_of, extra_vars)

    return _make


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """TIDELINE_HOME and DAGSTER_HOME in a temp folder, so tests never touch .tideline/."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("TIDELINE_HOME", str(home))
    monkeypatch.setenv("TIDELINE_WAREHOUSE", str(home / "warehouse.duckdb"))
    monkeypatch.delenv("TIDELINE_AS_OF", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    yield home


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):  # noqa: ANN001, ANN201 (xdist's types)
    """--dist loadfile starts the longest files first (tests/scheduling.py); other modes as xdist has them."""
    if config.getvalue("dist") != "loadfile":
        return None
    from tests.scheduling import FileOrderScheduling

    return FileOrderScheduling(config, log)
