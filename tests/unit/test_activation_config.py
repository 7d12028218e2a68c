"""The shipped activation config's policies, and quiet hours taken from the environment."""

from __future__ import annotations

import pytest

from activation.config import load_config
from activation.destinations.base import ConfigError


def test_quiet_hours_default_to_21_to_8(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIDELINE_QUIET_HOURS_START", raising=False)
    monkeypatch.delenv("TIDELINE_QUIET_HOURS_END", raising=False)
    policies = load_config().policies
    assert (policies.quiet_hours_start, policies.quiet_hours_end) == (21, 8)


def test_quiet_hours_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDELINE_QUIET_HOURS_START", "0")
    monkeypatch.setenv("TIDELINE_QUIET_HOURS_END", "0")  # start = end: never quiet (the demo)
    policies = load_config().policies
    assert (policies.quiet_hours_start, policies.quiet_hours_end) == (0, 0)


@pytest.mark.parametrize("value", ["24", "-1", "eight", ""])
def test_a_bad_quiet_hour_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("TIDELINE_QUIET_HOURS_END", value)
    with pytest.raises(ConfigError, match=r"policies\.quiet_hours\.end must be an hour 0-23"):
        load_config()
