"""Sends that sign links refuse to start without an adequate tracking secret; local sandbox runs
(`tideline run` with the local destinations, `tideline demo`) use their home's generated one."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from activation import tokens
from activation.config import load_config
from activation.destinations import ConfigError, create
from tideline.demo.local import local_destinations

EMAIL = {
    "type": "smtp",
    "host": "127.0.0.1",
    "port": 1025,
    "from_address": "news@tideline.example",
    "unsubscribe_base_url": "http://127.0.0.1:8090/u",
}


@pytest.mark.parametrize(
    ("value", "problem"),
    [(None, "is not set"), ("", "is not set"), ("tideline-local-dev-only", "is too short")],
)
def test_email_destination_refuses_to_be_created_without_an_adequate_secret(
    monkeypatch: pytest.MonkeyPatch, value: str | None, problem: str
) -> None:
    """create() is what a sync asset calls before its engine plans or marks anything in flight."""
    if value is None:
        monkeypatch.delenv("TIDELINE_TRACKING_SECRET", raising=False)
    else:
        monkeypatch.setenv("TIDELINE_TRACKING_SECRET", value)
    with pytest.raises(ConfigError) as caught:
        create("email", dict(EMAIL))
    assert str(caught.value).startswith("destination email (smtp): cannot sign links: ")
    assert f"TIDELINE_TRACKING_SECRET {problem}" in str(caught.value)
    assert "secrets.token_hex(32)" in str(caught.value)


def test_local_sandbox_runs_sign_with_the_homes_own_generated_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIDELINE_TRACKING_SECRET", raising=False)
    monkeypatch.delenv("TIDELINE_RECEIVER_WEBHOOK_SECRET", raising=False)
    monkeypatch.delenv("TIDELINE_ACTIVATION_CONFIG", raising=False)
    home = tmp_path / "home"
    with local_destinations(home):
        secret = os.environ.get("TIDELINE_TRACKING_SECRET")
        assert secret and re.fullmatch(r"[0-9a-f]{64}", secret)
        assert tokens.tracking_secret() == secret.encode()
        config = load_config(None)  # config/activation.yml, pointed at the local destinations
        create("email", config.destinations["email"]).close()
    assert "TIDELINE_TRACKING_SECRET" not in os.environ  # restored afterwards
    stored = home / "secrets.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600 and secret in stored.read_text()
    with local_destinations(home):  # the next run of the same home: links in earlier emails still verify
        assert os.environ["TIDELINE_TRACKING_SECRET"] == secret
    with local_destinations(tmp_path / "other"):  # another home has its own
        assert os.environ["TIDELINE_TRACKING_SECRET"] != secret


def test_a_configured_secret_wins_over_the_generated_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured = "configured-tracking-secret-0123456789abcdef"
    monkeypatch.delenv("TIDELINE_ACTIVATION_CONFIG", raising=False)
    monkeypatch.setenv("TIDELINE_TRACKING_SECRET", configured)
    with local_destinations(tmp_path / "home"):
        assert os.environ["TIDELINE_TRACKING_SECRET"] == configured
    assert configured not in (tmp_path / "home" / "secrets.json").read_text()
    monkeypatch.setenv("TIDELINE_TRACKING_SECRET", "short")  # configured but weak: refused, not replaced
    with local_destinations(tmp_path / "home"), pytest.raises(ConfigError, match="is too short"):
        create("email", load_config(None).destinations["email"])
