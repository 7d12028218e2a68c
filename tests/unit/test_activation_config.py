"""The shipped activation config's policies, quiet hours taken from the environment, and the
names and time zones that reach SQL, checked at load."""

from __future__ import annotations

import json

import pytest

from activation.config import SyncBinding, load_config
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


# --- config text that reaches SQL is checked at load (issue 11 item 3) -----------------------------------


def _config_with(tmp_path, policies: str) -> object:
    path = tmp_path / "activation.yml"
    path.write_text(
        "destinations:\n  esp: {type: webhook, url: 'http://127.0.0.1:1/x'}\npolicies:\n" + policies
    )
    return path


@pytest.mark.parametrize(
    "zone", ["Europe/Berlin'", "UTC'; drop table marts.dim_customers; --", "Mars/Olympus", ""]
)
def test_a_default_timezone_that_is_not_an_iana_zone_is_a_config_error(tmp_path, zone: str) -> None:
    path = _config_with(tmp_path, f"  default_timezone: {json.dumps(zone)}\n")
    with pytest.raises(ConfigError, match=r"policies\.default_timezone .* is not an IANA time zone"):
        load_config(path)


def test_a_real_default_timezone_loads(tmp_path) -> None:
    assert load_config(
        _config_with(tmp_path, "  default_timezone: America/New_York\n")
    ).policies.default_timezone == ("America/New_York")


def _binding(**changes) -> SyncBinding:
    fields = {
        "segment": "seg",
        "relation": "marts.seg",
        "destination": "esp",
        "mode": "message",
        "channel": "email",
        "fields": {"email": "email"},
        "campaign": "Mother's Day",
        "variants": {"Mother's Day": {}, "B": {}},
        "variant_weights": {"Mother's Day": 0.5, "B": 0.5},
    }
    return SyncBinding(**{**fields, **changes})


def test_names_with_quotes_are_valid() -> None:
    _binding().validate({"esp": {"type": "webhook"}})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"variants": {"A\nB": {}}, "variant_weights": {"A\nB": 1.0}},
            r"experiment\.variants name .* control character",
        ),
        ({"campaign": " "}, r"campaign must be a non-empty string"),
        ({"campaign": "x" * 101}, r"campaign .* longer than 100 characters"),
        ({"content_version": "v1\x00"}, r"content\.version .* control character"),
        ({"variant_weights": {"Mother's Day": 1.0}}, r"experiment\.weights must name exactly the variants"),
    ],
)
def test_unusable_names_are_config_errors_naming_the_key(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=r"segment seg, destination esp: " + message):
        _binding(**changes).validate({"esp": {"type": "webhook"}})
