"""activation.activate, the plain function a sync asset wraps, without Dagster: a real DuckDB
warehouse, the config loaded from a YAML file, the project's HTTP sink on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from activation.activate import activate
from activation.config import SyncBinding, load_config
from activation.destinations.base import ConfigError
from activation.warehouse import DuckDBLimits
from tests.helpers import opted_in_segment
from tideline.demo.sinks.http_sink import HttpSink

pytestmark = pytest.mark.slow  # each test builds a segment warehouse and runs a sync through the real sink

SECRET = "activate-test-webhook-secret"
SMS = SyncBinding("segment", "marts.segment", "sms", "message", "sms", {"phone": "phone"}, "spring")
LIMITS = DuckDBLimits.resolve(env={})


@pytest.fixture
def warehouse(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    return opted_in_segment(duckdb.connect(str(tmp_path / "w.duckdb")), 12)


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "activation.yml"
    destination = {"type": "webhook", "url": url, "secret_env": "TEST_ACTIVATE_SECRET", "max_batch_size": 5}
    policies = {"quiet_hours": {"start": 0, "end": 0}}
    path.write_text(json.dumps({"destinations": {"sms": destination}, "policies": policies}))
    return path


def test_an_activation_takes_in_unsubscribes_then_sends_the_rest_once(
    warehouse: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    raw = tmp_path / "raw"
    consents = raw / "crm" / "consents"
    consents.mkdir(parents=True)
    revoked = {
        "customer_id": "c003",
        "channel": "sms",
        "status": "revoked",
        "consented_at": "2026-03-01T10:00:00",
    }
    (consents / "receiver-1.jsonl").write_text(json.dumps(revoked) + "\n")
    with HttpSink(secret=SECRET) as sink:
        config = load_config(_config(tmp_path, sink.url("/sms")), env={"TEST_ACTIVATE_SECRET": SECRET})
        first = activate(warehouse, SMS, config, raw, limits=LIMITS, workers=1)
        again = activate(warehouse, SMS, config, raw, limits=LIMITS, workers=1)
        sent_to = sorted(r["customer_id"] for q in sink.requests_for("/sms") for r in q.body["records"])
    assert (first.intake.revocations, first.result.sent, first.result.failed) == (1, 11, 0)
    assert first.result.skipped_by_reason == {"no_consent": 1}
    assert "c003" not in sent_to and len(sent_to) == 11  # the unsubscribe stopped the very next send
    assert (again.intake.revocations, again.result.sent) == (0, 0)  # nothing taken in or sent twice


def test_a_binding_the_config_cannot_serve_sends_nothing(
    warehouse: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    config = load_config(_config(tmp_path, "http://127.0.0.1:9/sms"), env={"TEST_ACTIVATE_SECRET": SECRET})
    to_nowhere = SyncBinding("segment", "marts.segment", "pager", "message", "sms", {"phone": "phone"}, "x")
    with pytest.raises(ConfigError, match="pager"):
        activate(warehouse, to_nowhere, config, tmp_path / "raw", limits=LIMITS)
    unsigned = load_config(_config(tmp_path, "http://127.0.0.1:9/sms"), env={})  # the secret is not set
    with pytest.raises(ConfigError, match="TEST_ACTIVATE_SECRET"):
        activate(warehouse, SMS, unsigned, tmp_path / "raw", limits=LIMITS)
    assert not warehouse.execute(
        "select count(*) from information_schema.tables where table_schema = 'tideline_sync'"
    ).fetchone()[0]
