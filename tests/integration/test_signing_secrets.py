"""Sends that sign links refuse to start without an adequate tracking secret; local sandbox runs
(`tideline run` with the local destinations, `tideline demo`, the UI that `tideline ui` starts) use
their state folder's generated one, read from secrets.json, never written into the environment."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import replace
from pathlib import Path

import dagster as dg
import pytest

from activation import tokens
from activation.destinations import ConfigError, create
from orchestration.definitions import build_definitions
from orchestration.resources import ActivationConfigResource, activation_config_resource
from tideline.demo.local import local_destinations
from tideline.settings import Settings

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


def _local_settings(home: Path) -> Settings:
    return Settings(home, home / "warehouse.duckdb", home / "raw", "", local_destinations=True)


def test_local_sandbox_runs_sign_with_the_state_folders_own_generated_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIDELINE_TRACKING_SECRET", raising=False)
    before = dict(os.environ)
    home = tmp_path / "home"
    with local_destinations(home, {}) as local:
        # what a CLI run with the local destinations builds: the sinks' addresses as data
        resource = activation_config_resource(_local_settings(home), {}, local.values)
        config = resource.config()  # config/activation.yml, pointed at the local destinations
        assert config.destinations["sms"]["url"] == f"{local.http}/sms"
        secret = config.env["TIDELINE_TRACKING_SECRET"]
        assert re.fullmatch(r"[0-9a-f]{64}", secret)
        assert tokens.tracking_secret(config.env) == secret.encode()
        config.destination("email").close()
        config.destination("crm").close()  # the CRM token the HTTP sink checks, from the same file
    assert dict(os.environ) == before  # nothing was written into the environment
    stored = home / "secrets.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600 and secret in stored.read_text()
    with local_destinations(home, {}):  # the next run of the same home: links in earlier emails still verify
        again = activation_config_resource(_local_settings(home), {}).config()
        assert again.env["TIDELINE_TRACKING_SECRET"] == secret
    other = tmp_path / "other"
    with local_destinations(other, {}):  # another state folder has its own
        assert activation_config_resource(_local_settings(other), {}).config().env[
            "TIDELINE_TRACKING_SECRET"
        ] not in ("", secret)


def _initialised(resource: ActivationConfigResource) -> ActivationConfigResource:
    """The resource as a run builds it: its dg.EnvVars resolved from the environment."""
    with dg.build_init_resource_context() as context:
        return resource.process_config_and_initialize().with_resource_context(context)


def test_the_ui_code_location_reads_the_sandbox_secrets_only_in_local_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tideline ui` starts `dagster dev` with TIDELINE_LOCAL_DESTINATIONS=1 and the local
    destinations' addresses in its environment: its resources read the state folder's secrets.json,
    so emails sent from the UI sign their links with the home's key, and reach the local sinks."""
    monkeypatch.delenv("TIDELINE_TRACKING_SECRET", raising=False)
    home = tmp_path / "home"
    with local_destinations(home, {}) as local:
        env = {**_local_settings(home).environment(), **local.values}
        for name, value in env.items():  # the environment `tideline ui` gives `dagster dev`
            monkeypatch.setenv(name, value)
        settings = Settings.from_env(os.environ)
        assert settings.local_destinations and settings.secrets_path == home / "secrets.json"
        config = _initialised(build_definitions(settings, os.environ).resources["activation"]).config()
        assert config.destinations["email"]["host"] == local.values["TIDELINE_SMTP_HOST"]
        assert config.env["TIDELINE_TRACKING_SECRET"] in settings.secrets_path.read_text()
        config.destination("email").close()
        # the same settings without the local destinations: no sandbox secret, a send refuses
        remote = build_definitions(replace(settings, local_destinations=False), os.environ)
        remote_config = _initialised(remote.resources["activation"]).config()
        assert "TIDELINE_TRACKING_SECRET" not in remote_config.env
        with pytest.raises(ConfigError, match="TIDELINE_TRACKING_SECRET is not set"):
            remote_config.destination("email")


def test_a_configured_secret_wins_over_the_generated_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured = "configured-tracking-secret-0123456789abcdef"
    monkeypatch.setenv("TIDELINE_TRACKING_SECRET", configured)
    home = tmp_path / "home"
    with local_destinations(home, os.environ) as local:
        resource = activation_config_resource(_local_settings(home), os.environ, local.values)
        assert resource.environment["TIDELINE_TRACKING_SECRET"] == dg.EnvVar("TIDELINE_TRACKING_SECRET")
        assert _initialised(resource).config().env["TIDELINE_TRACKING_SECRET"] == configured
    assert configured not in (home / "secrets.json").read_text()
    monkeypatch.setenv("TIDELINE_TRACKING_SECRET", "short")  # configured but weak: refused, not replaced
    weak = ActivationConfigResource(
        environment={"TIDELINE_TRACKING_SECRET": "short"}, secrets_file=str(home / "secrets.json")
    )
    with pytest.raises(ConfigError, match="is too short"):
        weak.config().destination("email")


def test_tideline_ui_gives_dagster_dev_what_its_runs_need_to_send_email(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tideline ui` (what `make ui` calls) on a home whose last CLI run was as of a given day: the
    `dagster dev` it starts gets that as-of date and the local mode, and the code location it loads
    from that environment builds an email destination that signs with the state folder's key and
    sends to the sinks `tideline ui` keeps running."""
    import subprocess

    import tideline.commands.ui as ui
    from tideline.cli import main

    monkeypatch.delenv("TIDELINE_TRACKING_SECRET", raising=False)
    monkeypatch.delenv("TIDELINE_ACTIVATION_CONFIG", raising=False)
    monkeypatch.delenv("TIDELINE_AS_OF", raising=False)
    monkeypatch.delenv("TIDELINE_RAW_DIR", raising=False)
    home, raw = tmp_path / "home", tmp_path / "raw"
    replace(_local_settings(home), raw_dir=raw, as_of="2026-03-02").remember()  # the last CLI run
    monkeypatch.setattr(ui, "parse_dbt_project", lambda: None)  # the manifest is built already
    seen: dict[str, object] = {}

    def dagster_dev(command: list[str], env: dict[str, str], cwd: Path) -> int:
        seen["command"] = command
        settings = Settings.from_env(env)  # what orchestration/definitions.py does with its environment
        seen["settings"] = settings
        with monkeypatch.context() as m:  # dg.EnvVar resolves from the process environment
            for name, value in env.items():
                m.setenv(name, value)
            resource = _initialised(build_definitions(settings, env).resources["activation"])
        config = resource.config()
        seen["smtp"] = f"{config.destinations['email']['host']}:{config.destinations['email']['port']}"
        seen["secret"] = config.env["TIDELINE_TRACKING_SECRET"]
        config.destination("email").close()  # refuses without an adequate tracking secret
        return 0

    monkeypatch.setattr(subprocess, "call", dagster_dev)
    assert main(["ui", "--home", str(home)]) == 0
    settings = seen["settings"]
    assert isinstance(settings, Settings)
    assert (settings.as_of, settings.raw_dir, settings.local_destinations) == ("2026-03-02", raw, True)
    assert seen["command"][1:4] == ["dev", "-m", "orchestration.definitions"]
    assert seen["secret"] in (home / "secrets.json").read_text()
    assert f"Local destinations: SMTP {seen['smtp']}," in capsys.readouterr().out
    assert "TIDELINE_TRACKING_SECRET" not in os.environ
