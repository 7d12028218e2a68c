"""`tideline journey check|list|tick|simulate|send-test` end to end through the CLI's entry point,
on a small hand-built warehouse (the relations of tests/integration/test_journey_tick.py), a journey
folder of one file and an activation config whose SMS destination is the project's HTTP sink."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from tests.integration.test_journey_tick import SECRET, at, event, make_warehouse
from tideline.cli import main
from tideline.commands.run import os_user
from tideline.demo.sinks.http_sink import HttpSink

pytestmark = pytest.mark.slow  # several engine runs to a sink

JOURNEY = """\
description: Checkout reminder by SMS.
entry:
  event: {type: checkout_started}
steps:
  - id: hour
    wait: {hours: 1}
  - id: reminder
    send: {destination: sms, channel: sms, fields: {phone: phone}, text: "Still thinking about it?"}
"""


def test_the_journey_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    con = make_warehouse(tmp_path / "warehouse.duckdb")
    event(con, "e1", "c1", "checkout_started", at(0))
    event(con, "e3", "c3", "checkout_started", at(0))  # no SMS consent
    con.close()
    folder = tmp_path / "journeys"
    folder.mkdir()
    (folder / "cart.yml").write_text(JOURNEY)
    with HttpSink(secret=SECRET) as sink:
        config = tmp_path / "activation.yml"
        config.write_text(
            json.dumps(
                {
                    "destinations": {
                        "sms": {"type": "webhook", "url": sink.url("/sms"), "secret_env": "TEST_SECRET"}
                    },
                    "policies": {"quiet_hours": {"start": 0, "end": 0}},
                    "test_accounts": {"qa": [{"phone": "+447700900009"}]},
                }
            )
        )
        for name, value in {
            "TIDELINE_HOME": str(tmp_path),
            "TIDELINE_WAREHOUSE": str(tmp_path / "warehouse.duckdb"),
            "TIDELINE_RAW_DIR": str(tmp_path / "raw"),
            "TIDELINE_JOURNEYS_DIR": str(folder),
            "TIDELINE_ACTIVATION_CONFIG": str(config),
            "TEST_SECRET": SECRET,
        }.items():
            monkeypatch.setenv(name, value)

        assert main(["journey", "check"]) == 0
        assert "reminder: send sms (inline) -> end" in capsys.readouterr().out

        assert (
            main(["journey", "simulate", "cart", "--from", "2026-03-10", "--to", "2026-03-10", "--json"]) == 0
        )
        simulated = json.loads(capsys.readouterr().out)
        assert (simulated["entered"], simulated["messages"]) == (2, {"reminder": 1})
        assert simulated["skipped"] == {"reminder: no_consent": 1}
        assert sink.requests_for("/sms") == []  # a simulation sends nothing

        assert main(["journey", "tick", "--at", at(0.1).isoformat()]) == 0
        assert main(["journey", "tick", "cart", "--at", at(1.2).isoformat()]) == 0
        ticks = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [t["entered"] for t in ticks] == [2, 0] and ticks[1]["sent"] == 1
        with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as ro:
            launchers = ro.execute(
                "select distinct launched_by from tideline_sync.sync_runs where sync_key like 'journey__%'"
            ).fetchall()
        assert launchers == [(f"cli:{os_user()}",)]  # who ticked, in the sync's run record
        assert main(["journey", "list"]) == 0
        assert "0 in flight" in capsys.readouterr().out

        assert main(["journey", "send-test", "cart", "--to", "qa"]) == 0
        assert json.loads(capsys.readouterr().out)["sent"] == 1
        phones = sorted(r["fields"]["phone"] for q in sink.requests_for("/sms") for r in q.body["records"])
        assert phones == ["+447000001", "+447700900009"]
        assert main(["journey", "send-test", "cart", "--to", "nobody"]) == 2
        assert "test_accounts list 'nobody'" in capsys.readouterr().err
