"""`tideline send-test`: an activation's message, rendered for sample customers, sent to internal test
accounts through the real destinations — an aiosmtpd SMTP sink and the project's HTTP sink on
loopback — with the real engine, policies and ledger, driven through the CLI's entry point.

The warehouse: six customers of segment win_back (c1..c6, each with a name and an offer), all
opted in; the activation config caps marketing email and SMS at one message per customer per
week, and its test_accounts list `qa` holds two internal accounts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from pathlib import Path

import duckdb
import pytest

from activation.activate import activate
from activation.config import bindings_from_manifest, load_config
from activation.warehouse import DuckDBLimits
from tests.helpers import dbt_build
from tideline.cli import main
from tideline.demo.sinks.http_sink import HttpSink
from tideline.demo.sinks.smtp_sink import SmtpSink

pytestmark = pytest.mark.slow  # several engine runs to two sinks, and a dbt build

SECRET = "test-webhook-secret"
CUSTOMERS = {  # id: (first name, offer)
    f"c{i}": (name, offer)
    for i, (name, offer) in enumerate(
        [("Ann", "10% off"), ("Bob", "free shipping"), ("Cleo", "a gift"), ("Dan", "15% off"),
         ("Eve", "20% off"), ("Finn", "a voucher")],
        start=1,
    )
}  # fmt: skip
ACCOUNTS = [
    {"email": "qa1@team.example", "phone": "+447700900001", "first_name": "QA"},
    {"email": "qa2@team.example", "phone": "+447700900002"},
]
SUBJECTS = {
    "A": "Hi {{ first_name }}, {{ offer }} is yours",
    "B": "{{ first_name }}: last days for {{ offer }}",
}


def _activation(name: str, **spec) -> dict:
    return {
        "resource_type": "model",
        "name": name,
        "schema": "marts",
        "config": {"meta": {"activation": spec}},
    }


MANIFEST = {
    "nodes": {
        "model.tideline.win_back": _activation(
            "win_back",
            campaign="win_back_2027",
            destinations=[
                {
                    "name": "email",
                    "mode": "message",
                    "channel": "email",
                    "holdout_share": 0.0,
                    "fields": {"email": "email", "first_name": "first_name", "offer": "offer"},
                    "content": {"version": "v1", "html": "<p>Dear {{ first_name }}, {{ offer }} waits.</p>"},
                    "experiment": {
                        "variants": {v: {"subject": s} for v, s in SUBJECTS.items()},
                        "weights": {"A": 0.5, "B": 0.5},
                    },
                },
                {
                    "name": "sms",
                    "mode": "message",
                    "channel": "sms",
                    "fields": {"phone": "phone", "first_name": "first_name"},
                    "content": {"version": "v1", "text": "Hi {{ first_name }}, we miss you"},
                },
                {"name": "crm", "mode": "upsert", "fields": {"email": "email"}},
            ],
        )
    }
}


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    warehouse = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(warehouse))
    con.execute("create schema marts")
    con.execute(
        """create table marts.dim_customers (customer_id varchar, email_opt_in boolean, sms_opt_in boolean,
           push_opt_in boolean, timezone varchar)"""
    )
    con.execute(
        "create table marts.win_back (customer_id varchar, email varchar, phone varchar, first_name varchar, offer varchar)"
    )
    for i, (cid, (name, offer)) in enumerate(CUSTOMERS.items(), start=1):
        con.execute("insert into marts.dim_customers values (?, true, true, true, 'UTC')", [cid])
        con.execute(
            "insert into marts.win_back values (?, ?, ?, ?, ?)",
            [cid, f"{cid}@customer.example", f"+4470000000{i}", name, offer],
        )
    con.close()
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(MANIFEST))
    with SmtpSink(out_dir=tmp_path / "outbox") as smtp, HttpSink(secret=SECRET) as http:
        host, port = smtp.address
        config = tmp_path / "activation.yml"
        config.write_text(
            json.dumps(
                {
                    "destinations": {
                        "email": {
                            "type": "smtp", "host": host, "port": port, "from_address": "news@shop.example",
                            "unsubscribe_base_url": "http://127.0.0.1:8090/u", "retry_base_seconds": 0.01,
                        },
                        "sms": {"type": "webhook", "url": http.url("/sms"), "secret_env": "TEST_SECRET"},
                        "crm": {"type": "webhook", "url": http.url("/crm"), "secret_env": "TEST_SECRET"},
                    },
                    "policies": {
                        "frequency_caps": {"marketing": {"email": {"max": 1, "days": 7}, "sms": {"max": 1, "days": 7}}},
                        "quiet_hours": {"start": 0, "end": 0},
                    },
                    "test_accounts": {"qa": ACCOUNTS},
                }
            )
        )  # fmt: skip
        for name, value in {
            "TIDELINE_HOME": str(tmp_path),
            "TIDELINE_WAREHOUSE": str(warehouse),
            "TIDELINE_RAW_DIR": str(tmp_path / "raw"),
            "TIDELINE_ACTIVATION_CONFIG": str(config),
            "TEST_SECRET": SECRET,
        }.items():
            monkeypatch.setenv(name, value)
        yield {"warehouse": warehouse, "manifest": manifest, "config": config, "smtp": smtp, "http": http}


def _samples(n: int) -> list[str]:
    """The sample customers: the first n by the md5 of their id (the pick the test send makes)."""
    return sorted(CUSTOMERS, key=lambda c: (hashlib.md5(c.encode()).hexdigest(), c))[:n]


def _send_test(world: dict, *args: str) -> int:
    return main(["send-test", *args, "--to", "qa", "--manifest", str(world["manifest"])])


def _real_sync(world: dict, sync_key: str):
    config = load_config(world["config"])
    binding = next(b for b in bindings_from_manifest(world["manifest"]) if b.sync_key == sync_key)
    con = duckdb.connect(str(world["warehouse"]))
    try:
        return activate(con, binding, config, world["warehouse"].parent / "raw", limits=DuckDBLimits()).result
    finally:
        con.close()


def _ledger(world: dict, sql: str) -> list[tuple]:
    con = duckdb.connect(str(world["warehouse"]), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_the_test_accounts_get_the_real_email_for_sample_customers_and_no_customer_gets_anything(
    world: dict,
    capsys: pytest.CaptureFixture,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    assert _send_test(world, "win_back__email", "--customers", "2") == 0
    out = capsys.readouterr()
    printed = json.loads(out.out)
    samples = _samples(2)
    # 2 accounts × 2 sample customers × 2 variants, each the variant's real subject and body
    messages = world["smtp"].wait_for(8)
    assert sorted(str(m["To"]) for m in messages) == ["qa1@team.example"] * 4 + ["qa2@team.example"] * 4
    expected = {
        (
            account["email"],
            subject.replace("{{ first_name }}", CUSTOMERS[c][0]).replace("{{ offer }}", CUSTOMERS[c][1]),
        )
        for account in ACCOUNTS
        for c in samples
        for subject in SUBJECTS.values()
    }
    assert {(str(m["To"]), str(m["Subject"])) for m in messages} == expected
    bodies = " ".join(m.get_body(("html",)).get_content() for m in messages)
    assert all(f"Dear {CUSTOMERS[c][0]}, {CUSTOMERS[c][1]} waits." in bodies for c in samples)
    assert not any("customer.example" in str(m["To"]) for m in world["smtp"].messages)
    # printed: counts and ids only, never a sample customer's name, offer or address
    assert printed == {
        "activation": "win_back__email", "sync_key": "test__win_back__email", "samples": samples, "accounts": 2,
        "by_variant": {v: {"sent": 4, "skipped": {}, "failed": 0} for v in ("A", "B")},
    }  # fmt: skip
    said = out.out + out.err + caplog.text
    for cid in CUSTOMERS:
        assert CUSTOMERS[cid][0] not in said and CUSTOMERS[cid][1] not in said and f"{cid}@" not in said
    # the ledger: the test campaign and sync key, the accounts' ids; no work table is left
    assert _ledger(world, "select distinct campaign, sync_key, customer_id from tideline_sync.delivery_log order by 3") == [
        ("test:win_back_2027", "test__win_back__email", "test:qa:1"),
        ("test:win_back_2027", "test__win_back__email", "test:qa:2"),
    ]  # fmt: skip
    assert (
        _ledger(world, "select table_name from information_schema.tables where table_name like 'test_send%'")
        == []
    )

    # the real sync still sends to every customer, once: the test send used no one's frequency cap
    real = _real_sync(world, "win_back__email")
    assert real.sent == 6 and real.skipped_by_reason == {}
    to_customers = sorted(
        str(m["To"]) for m in world["smtp"].wait_for(14) if "customer.example" in str(m["To"])
    )
    assert to_customers == sorted(f"{c}@customer.example" for c in CUSTOMERS)
    # asking again sends again (to the accounts only); the customers' caps are now used by the real sync
    assert _send_test(world, "win_back__email", "--customers", "2") == 0
    assert len(world["smtp"].wait_for(22)) == 22
    assert _real_sync(world, "win_back__email").sent == 0

    # the engagement marts leave the test sends out: fct_messages (what experiment_results and
    # fct_campaign_performance count) holds the six real messages only
    monkeypatch.setenv("DBT_INDIRECT_SELECTION", "cautious")  # not the journey marts' relationship tests
    dbt_build(world["warehouse"], dt.date.today().isoformat(), select="+fct_messages")
    assert _ledger(world, "select campaign, count(*) from marts.fct_messages group by 1") == [
        ("win_back_2027", 6)
    ]


def test_synthetic_customers_by_sms_through_the_http_destination(
    world: dict, capsys: pytest.CaptureFixture
) -> None:
    assert _send_test(world, "win_back__sms", "--synthetic", "--customers", "3") == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["samples"] == ["synthetic-1", "synthetic-2", "synthetic-3"]
    assert printed["by_variant"] == {"all": {"sent": 6, "skipped": {}, "failed": 0}}
    requests = world["http"].requests_for("/sms")
    records = [r for q in requests for r in q.body["records"]]
    assert sorted(r["fields"]["phone"] for r in records) == ["+447700900001"] * 3 + ["+447700900002"] * 3
    assert sorted({r["fields"]["first_name"] for r in records}) == ["Alex", "Robin", "Sam"]
    assert {q.body["campaign"] for q in requests} == {"test:win_back_2027"}
    assert {r["customer_id"] for r in records} == {"test:qa:1", "test:qa:2"}
    assert _real_sync(world, "win_back__sms").sent == 6  # every customer still gets the real one


def test_a_segment_name_picks_its_message_activation_and_wrong_names_say_why(
    world: dict, capsys: pytest.CaptureFixture
) -> None:
    assert _send_test(world, "win_back") == 2
    assert "segment win_back has several message activations (win_back__email, win_back__sms)" in (
        capsys.readouterr().err
    )
    assert _send_test(world, "win_back__crm") == 2
    assert "win_back__crm is a upsert sync without a message to render" in capsys.readouterr().err
    assert _send_test(world, "nothing") == 2
    assert "no activation named nothing" in capsys.readouterr().err
    assert main(["send-test", "win_back__sms", "--to", "nobody", "--manifest", str(world["manifest"])]) == 2
    assert "no test_accounts list 'nobody'" in capsys.readouterr().err
    assert world["http"].requests_for("/sms") == [] and world["http"].requests_for("/crm") == []
