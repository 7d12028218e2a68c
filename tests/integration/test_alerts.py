"""Campaign-performance alerts end to end: fct_campaign_performance rows, the real dbt model
campaign_alert_rates built from them, and the Dagster checks on it posting signed alerts to a real
HTTP endpoint (HttpSink on loopback, HMAC checked), once per alert, and nothing when all is well."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from activation.destinations.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from orchestration.alerts import RATES_KEY, campaign_performance_alerts
from orchestration.resources import ActivationConfigResource, WarehouseResource
from tideline.dbt_manifest import dbt_executable
from tideline.demo.sinks.http_sink import HttpSink
from tideline.settings import DBT_PROJECT_DIR

pytestmark = pytest.mark.slow  # each test materialises the alert checks through Dagster

SECRET = "alert-s3cret"
DAY = dt.date(2026, 3, 10)
# marts.fct_campaign_performance as the issue #5 contract defines it
COLUMNS = {
    "campaign": "varchar",
    "variant": "varchar",
    "channel": "varchar",
    "send_date": "date",
    **{
        c: "bigint"
        for c in [
            "sent",
            "failed",
            "attempted",
            "delivered",
            "bounced",
            "failed_or_bounced",
            "hard_bounced",
            "unique_opens",
            "bot_opens",
            "unique_clicks",
            "unsubscribes",
            "complaints",
            "conversions",
        ]
    },
    **{
        c: "double"
        for c in [
            "revenue",
            "cost",
            "delivery_rate",
            "delivery_failure_rate",
            "bounce_rate",
            "open_rate",
            "click_rate",
            "click_to_open_rate",
            "unsubscribe_rate",
            "complaint_rate",
            "conversion_rate",
            "revenue_per_message",
            "roi",
        ]
    },
}


def _row(campaign: str, variant: str, *, sent: int, failed: int, bounced: int, opens: int) -> dict:
    delivered = sent - bounced
    return {
        "campaign": campaign,
        "variant": variant,
        "channel": "email",
        "send_date": DAY,
        "sent": sent,
        "failed": failed,
        "attempted": sent + failed,
        "delivered": delivered,
        "bounced": bounced,
        "failed_or_bounced": failed + bounced,
        "unique_opens": opens,
        "unique_clicks": opens // 3,
        "unsubscribes": 0,
        "complaints": 0,
        "delivery_failure_rate": (failed + bounced) / (sent + failed),
        "open_rate": opens / delivered,
    }


# win_back/a: (3 failed + 3 bounced) / (197 + 3 attempted) = 0.03; win_back/b: (4 + 8) / (196 + 4) = 0.06
BAD = [
    _row("win_back", "a", sent=197, failed=3, bounced=3, opens=60),
    _row("win_back", "b", sent=196, failed=4, bounced=8, opens=60),
]
# b: (2 + 3) / 200 = 0.025; c: (2 + 8) / (198 + 2) = 0.05 exactly, not above 0.05 (a 4-byte float
# rate would be 0.0500000007 and alert)
GOOD = [
    BAD[0],
    _row("win_back", "b", sent=198, failed=2, bounced=3, opens=60),
    _row("win_back", "c", sent=198, failed=2, bounced=8, opens=60),
]


@pytest.fixture(scope="module")
def rates_sql(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The SQL of the dbt model campaign_alert_rates as dbt compiles it for a warehouse file named
    warehouse.duckdb (the relations it names are "warehouse"."marts"...), compiled once."""
    base = tmp_path_factory.mktemp("alert_rates_sql")
    env = {
        **os.environ,
        "TIDELINE_WAREHOUSE": str(base / "warehouse.duckdb"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    command = [dbt_executable(), "compile", "--quiet", "--select", "campaign_alert_rates"]
    command += ["--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(base / "target")]
    done = subprocess.run(command, cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    return (base / "target/compiled/tideline/models/marts/engagement/campaign_alert_rates.sql").read_text()


def _mart_asset(rows: list[dict] | None, rates_sql: str) -> dg.AssetsDefinition:
    """The rates mart as the pipeline builds it, from these fct_campaign_performance rows: the rows
    written as the upstream mart, then the compiled SQL of the dbt model campaign_alert_rates over
    them. None: nothing, so the mart does not exist."""

    @dg.asset(key=RATES_KEY)
    def campaign_alert_rates(warehouse: WarehouseResource) -> None:
        if rows is None:
            return
        with warehouse.connect() as con:
            con.execute("create schema if not exists marts")
            columns = ", ".join(f"{c} {t}" for c, t in COLUMNS.items())
            con.execute(f"create or replace table marts.fct_campaign_performance ({columns})")
            for r in rows:
                names = list(r)
                con.execute(
                    f"insert into marts.fct_campaign_performance ({', '.join(names)}) "
                    f"values ({', '.join('?' for _ in names)})",
                    [r[n] for n in names],
                )
            con.execute(f"create or replace table marts.campaign_alert_rates as {rates_sql}")

    return campaign_alert_rates


@pytest.fixture
def sink(monkeypatch: pytest.MonkeyPatch):
    with HttpSink(secret=SECRET) as server:
        monkeypatch.setenv("TIDELINE_ALERT_WEBHOOK_URL", server.url("/alerts"))
        monkeypatch.setenv("TIDELINE_WEBHOOK_SECRET", SECRET)
        monkeypatch.delenv("TIDELINE_ACTIVATION_CONFIG", raising=False)
        yield server


def _run(tmp_path: Path, rows: list[dict] | None, rates_sql: str) -> dict[str, dg.AssetCheckEvaluation]:
    """Materialise the mart and, with it, the alert checks on it (the shipped config/activation.yml)."""
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [_mart_asset(rows, rates_sql), campaign_performance_alerts],
            instance=instance,
            resources={
                "warehouse": WarehouseResource(path=str(tmp_path / "warehouse.duckdb")),
                # config/activation.yml, its variables from the (monkeypatched) environment as in a run
                "activation": ActivationConfigResource.from_environment("", os.environ),
            },
        )
    assert result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {
        "delivery_failure_rate_alert",
        "open_rate_alert",
        "unsubscribe_spike_alert",
        "complaint_rate_alert",
    }
    assert all(e.severity == dg.AssetCheckSeverity.WARN for e in evaluations.values())
    return evaluations


def test_a_failing_check_posts_one_signed_alert_and_never_the_same_one_twice(
    tmp_path: Path, sink, rates_sql: str
) -> None:
    first = _run(tmp_path, BAD, rates_sql)

    failing = first["delivery_failure_rate_alert"]
    assert failing.passed is False
    assert failing.metadata["alert_sent"].value is True
    assert failing.metadata["alerts_sent_now"].value == 1
    table = failing.metadata["offending_rows"].value
    assert "win_back" in table and "| b " in table and "0.06" in table and "sent now" in table
    assert "6.00% is above 5.00%" in failing.description
    # 200 delivered per variant, 60 opens: 0.30 and 0.3093, no unsubscribes or complaints
    for name in ("open_rate_alert", "unsubscribe_spike_alert", "complaint_rate_alert"):
        assert first[name].passed is True, name
        assert first[name].metadata["alert_sent"].value is False

    requests = sink.requests_for("/alerts")
    assert len(requests) == 1 and requests[0].status == 200 and sink.unauthorized == 0
    request = requests[0]
    assert verify_signature(
        SECRET, request.headers[TIMESTAMP_HEADER], request.raw, request.headers[SIGNATURE_HEADER]
    )
    assert not verify_signature(
        "another secret", request.headers[TIMESTAMP_HEADER], request.raw, request.headers[SIGNATURE_HEADER]
    )
    body = request.body
    assert body["destination"] == "staff_alerts" and body["mode"] == "alert"
    [record] = body["records"]
    assert record["customer_id"] == "" and record["action"] == "send"
    fields = record["fields"]
    assert {k: fields[k] for k in ("check", "campaign", "channel", "variant", "day", "threshold")} == {
        "check": "delivery_failure_rate",
        "campaign": "win_back",
        "channel": "email",
        "variant": "b",
        "day": "2026-03-10",
        "threshold": 0.05,
    }
    assert fields["value"] == pytest.approx(0.06)
    assert "@" not in json.dumps(body)  # aggregates only

    second = _run(tmp_path, BAD, rates_sql)  # the same data evaluated again: still failing, nothing new sent
    again = second["delivery_failure_rate_alert"]
    assert again.passed is False
    assert again.metadata["alert_sent"].value is False
    assert again.metadata["alerts_sent_before"].value == 1
    assert "sent before" in again.metadata["offending_rows"].value
    assert len(sink.requests_for("/alerts")) == 1

    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        logged = con.execute(
            "select cast(idempotency_key as varchar), check_name, variant, day from tideline_sync.alerts_sent"
        ).fetchall()
    finally:
        con.close()
    assert logged == [(record["idempotency_key"], "delivery_failure_rate", "b", DAY)]


def test_a_passing_check_sends_nothing(tmp_path: Path, sink, rates_sql: str) -> None:
    evaluations = _run(tmp_path, GOOD, rates_sql)
    assert all(e.passed for e in evaluations.values())
    assert "within the limits" in evaluations["delivery_failure_rate_alert"].description
    assert sink.requests == []


def test_no_mart_yet_passes_with_no_data(tmp_path: Path, sink, rates_sql: str) -> None:
    evaluations = _run(tmp_path, None, rates_sql)  # the warehouse file does not even exist
    assert all(e.passed and e.description.startswith("no data") for e in evaluations.values())
    duckdb.connect(str(tmp_path / "warehouse.duckdb")).close()  # a warehouse without the mart
    evaluations = _run(tmp_path, None, rates_sql)
    assert all(
        e.passed and e.description == "no data: marts.campaign_alert_rates does not exist yet"
        for e in evaluations.values()
    )
    assert sink.requests == []


def test_an_unreachable_secret_reports_the_alert_as_not_sent_and_retries_next_time(
    tmp_path: Path, sink, rates_sql: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIDELINE_WEBHOOK_SECRET")
    failing = _run(tmp_path, BAD, rates_sql)["delivery_failure_rate_alert"]
    assert failing.passed is False and failing.metadata["alert_sent"].value is False
    assert failing.metadata["alerts_failed"].value == 1
    assert "environment variable TIDELINE_WEBHOOK_SECRET is not set" in failing.description
    assert sink.requests == []
    monkeypatch.setenv("TIDELINE_WEBHOOK_SECRET", SECRET)
    assert _run(tmp_path, BAD, rates_sql)["delivery_failure_rate_alert"].metadata["alert_sent"].value is True
    assert len(sink.requests_for("/alerts")) == 1


def test_the_jobs_that_build_the_mart_run_the_alert_checks(tmp_path: Path) -> None:
    from orchestration.definitions import build_definitions
    from tideline.settings import Settings

    defs = build_definitions(
        Settings(home=tmp_path, warehouse=tmp_path / "w.duckdb", raw_dir=tmp_path, as_of="")
    )
    graph = defs.resolve_asset_graph()  # without the dbt model the check's target is only a placeholder
    assert graph.get(RATES_KEY).is_materializable  # the dbt model, not a placeholder for the check
    for job in ("tideline_pipeline", "tideline_daily"):  # they materialise the mart, so they run its checks
        assert "campaign_performance_alerts" in defs.resolve_job_def(job).graph.node_dict, job
    assert "campaign_performance_alerts" not in defs.resolve_job_def("tideline_retrain").graph.node_dict
