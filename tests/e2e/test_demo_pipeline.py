"""The whole asset graph on generated demo data, checked against the ground truth the generator planted
(and the run's Dagster event log scanned for the personal data it planted)."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import duckdb
import pandas as pd
import pytest

from orchestration.definitions import build_definitions
from tideline.commands.journey import tick_journeys
from tideline.demo.data import generate_demo_data
from tideline.demo.local import local_destinations
from tideline.demo.loop import JOURNEY_DAYS, JOURNEY_TICK_HOURS
from tideline.settings import Settings

pytestmark = pytest.mark.slow  # the module's fixture builds and runs the whole pipeline


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("demo")
    summary = generate_demo_data(base / "raw", customers=1200, seed=7)
    settings = Settings(
        home=base,
        warehouse=base / "warehouse.duckdb",
        raw_dir=base / "raw",
        as_of=str(summary.end_date),
        local_destinations=True,
        # the demo's journeys go live three days before the as-of date (as `make run` does)
        journey_clock=f"{summary.end_date - dt.timedelta(days=JOURNEY_DAYS)}T00:00:00",
    )
    # sends happen at the wall clock's hour: without this, a run while every demo customer is in
    # quiet hours (around 05:00-07:00 UTC) defers all email and SMS (the demo loop does the same)
    no_quiet_hours = {"TIDELINE_QUIET_HOURS_START": "0", "TIDELINE_QUIET_HOURS_END": "0"}
    with dg.instance_for_test() as instance, local_destinations(base, os.environ) as local:
        defs = build_definitions(settings, os.environ, {**no_quiet_hours, **local.values})
        result = defs.resolve_job_def("tideline_pipeline").execute_in_process(instance=instance)
        latest = instance.get_latest_materialization_event(dg.AssetKey(["marts", "customer_rfm"]))
        rfm_metadata = latest.asset_materialization.metadata
        # everything Dagster keeps of the run (run history, shown in the UI): each event's message
        # and metadata, and the run itself, serialised (non-ASCII unescaped, as the UI shows it)
        stored = [*instance.all_logs(result.run_id), instance.get_run_by_id(result.run_id)]
        event_log = "\n".join(
            json.dumps(json.loads(dg.serialize_value(entry)), ensure_ascii=False) for entry in stored
        )
        # then, as the demo loop does, the journeys are ticked every six hours up to the as-of day's end
        env = {**os.environ, **no_quiet_hours, **local.values}
        clock = dt.datetime.fromisoformat(settings.journey_clock)
        while clock <= dt.datetime.combine(summary.end_date, dt.time(23)):
            clock += dt.timedelta(hours=JOURNEY_TICK_HOURS)
            tick_journeys(settings, env, clock)
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    yield SimpleNamespace(
        summary=summary,
        result=result,
        rfm_metadata=rfm_metadata,
        con=con,
        outbox=local.outbox,
        event_log=event_log,
    )
    con.close()


def test_run_succeeds_with_every_check(demo_run) -> None:
    result, rfm_metadata = demo_run.result, demo_run.rfm_metadata
    assert result.success
    failed = [
        e.event_specific_data.check_name
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.event_specific_data.passed
    ]
    assert failed == ["rejects_reported"]  # the demo plants malformed rows on purpose
    assert rfm_metadata["dagster/row_count"].value > 500


def test_every_planted_duplicate_is_merged_into_its_original(demo_run) -> None:
    summary, con = demo_run.summary, demo_run.con
    duplicates = pd.read_csv(summary.truth_dir / "duplicates.csv")
    assert len(duplicates) > 10
    mapping = dict(
        con.execute(
            "select source_id, customer_id from marts.customer_id_map where source = 'crm'"
        ).fetchall()
    )
    for dup, original in duplicates[["customer_id", "duplicate_of"]].itertuples(index=False):
        assert mapping[dup] == mapping[original], (dup, original)
    merged = con.execute("select sum(merged_accounts - 1) from marts.dim_customers").fetchone()[0]
    assert merged == len(duplicates)  # and nothing else was merged


def test_rejects_are_exactly_the_planted_malformed_rows(demo_run) -> None:
    summary, con = demo_run.summary, demo_run.con
    planted = pd.read_csv(summary.truth_dir / "malformed.csv")
    assert planted["kind"].nunique() >= 5
    found = set(con.execute("select entity, source_file, source_row, field from marts.rejects").fetchall())
    expected = {
        (e, f, int(r), fld)
        for e, f, r, fld in planted[["entity", "file", "row", "field"]].itertuples(index=False)
    }
    assert found == expected


def test_scores_point_the_right_way_against_the_planted_future(demo_run) -> None:
    """The generator simulated 90 days beyond the as-of date; the scores must rank those outcomes."""
    from sklearn.metrics import roc_auc_score

    summary, con = demo_run.summary, demo_run.con
    scores = con.execute("select * from ml.customer_scores").df()
    assert len(scores) == con.execute("select count(*) from marts.dim_customers").fetchone()[0]
    truth = pd.read_parquet(summary.truth_dir / "customers.parquet")
    both = scores.merge(truth, on="customer_id")  # merged-away duplicate accounts drop out here
    active = both[both["churn_probability"].notna()]
    assert roc_auc_score(active["churned_next_90d"], active["churn_probability"]) > 0.7
    assert roc_auc_score(both["purchases_next_90d"] > 0, both["purchase_propensity"]) > 0.7
    buyers = both[both["expected_purchases"].notna()]
    assert buyers["expected_purchases"].corr(buyers["purchases_next_90d"]) > 0.3
    # MBG/NBD (selected by likelihood: the demo lets customers leave after their first order) gives
    # one-time buyers a real P(alive); plain BG/NBD would give them all 1 and rank worse than chance
    assert roc_auc_score(buyers["alive_at_end"], buyers["p_alive"]) > 0.65
    runs = con.execute("select model, beats_baseline from ml.model_runs order by model").fetchall()
    assert runs == [("churn", True), ("clv", True), ("propensity", True)]
    tagged = con.execute(
        "select count(*) from marts.customer_tags where tag = 'high_value_at_risk'"
    ).fetchone()[0]
    assert tagged > 0


def test_demo_segments_reach_the_local_destinations_safely(demo_run) -> None:
    con, outbox = demo_run.con, demo_run.outbox
    runs = dict(
        con.execute(
            "select sync_key, sum(sent) from tideline_sync.sync_runs where not dry_run group by sync_key"
        ).fetchall()
    )
    campaigns = {
        key: sent for key, sent in runs.items() if not key.startswith(("journey__", "staff_notifications__"))
    }
    assert set(campaigns) == {
        "win_back_dormant__email",
        "win_back_dormant__sms",
        "vip_early_access__push",
        "high_propensity_buyers__crm",
        "high_propensity_buyers__ads_audience",
    }
    assert all(sent > 0 for sent in campaigns.values()), runs
    # what the ledger says was sent is what arrived, once each (the journeys' emails too: their
    # syncs are journey__<journey>__<step>__<destination>; and the staff's, staff_notifications__staff_email)
    emails = list((outbox / "email").glob("*.eml"))
    assert len(emails) == sum(
        sent for key, sent in runs.items() if key.endswith(("__email", "__staff_email"))
    )
    # nobody without consent (or in the holdout) got a message
    leaks = con.execute(
        """select count(*) from tideline_sync.delivery_ledger as l
           join marts.dim_customers as c using (customer_id)
           where l.status = 'sent' and ((l.channel = 'email' and not c.email_opt_in)
                                        or (l.channel = 'sms' and not c.sms_opt_in))"""
    ).fetchone()[0]
    assert leaks == 0
    holdout = con.execute(
        "select count(*) from tideline_sync.delivery_ledger where status = 'holdout'"
    ).fetchone()[0]
    assert holdout > 0
    # ad audiences hold hashes only
    audience = "\n".join(p.read_text() for p in (outbox / "audiences").rglob("*.csv"))
    assert audience and "@" not in audience
    # staff notifications reach the local sink (each employee's chat handle under /staff/<id>, the
    # team channel), with ids and words about the customer, never their contact data
    made = dict(
        con.execute("select status, count(*) from tideline_staff.notifications group by 1").fetchall()
    )
    assert made.get("sent", 0) > 0, made
    posted = [
        json.loads(line)
        for path in (outbox / "http").glob("staff_*.jsonl")
        for line in path.read_text().splitlines()
    ]
    records = [r for request in posted if request["status"] == 200 for r in request["body"]["records"]]
    assert {request["path"] for request in posted} >= {"/staff/team"}
    email_address = re.compile(r"[\w.+-]+@[\w-]+\.[a-z]{2,}")  # an owner link's event key is staff@time
    assert records and not [r for r in records if email_address.search(json.dumps(r["fields"]))]


def test_the_demo_launches_send_their_pilot_and_test_share_first(demo_run) -> None:
    """The win-back SMS launches through a pilot, the A/B email through a winner roll-out
    (dbt_project/audiences/win_back_dormant.yml): one run sends the pilot and the test share only and
    holds the rest for the next run's decisions (docs/launches.md); every run records its launcher."""
    con = demo_run.con
    runs = dict(
        con.execute(
            """select sync_key, launch_stage from tideline_sync.sync_runs
               where not dry_run and sync_key like 'win_back_dormant__%'"""
        ).fetchall()
    )
    assert runs == {"win_back_dormant__sms": "pilot", "win_back_dormant__email": "test"}
    sent = con.execute(
        """select sync_key, stage, count(*) from tideline_sync.delivery_ledger
           where status = 'sent' and sync_key like 'win_back_dormant__%' group by 1, 2 order by 1, 2"""
    ).fetchall()
    assert [(key, stage) for key, stage, _n in sent] == [
        ("win_back_dormant__email", "test"),
        ("win_back_dormant__sms", "pilot"),
    ]
    held = dict(
        con.execute(
            """select sync_key, count(*) from tideline_sync.delivery_ledger where status = 'skipped'
               and reason in ('pilot:awaiting_gate', 'rollout:awaiting_decision') group by 1"""
        ).fetchall()
    )
    assert held["win_back_dormant__sms"] > 0 and held["win_back_dormant__email"] > 0
    # the pilot is about 30% of the sendable SMS audience, the test share about 50% of the email one
    counts = {key: n for key, _stage, n in sent}
    assert (
        0.15
        < counts["win_back_dormant__sms"] / (counts["win_back_dormant__sms"] + held["win_back_dormant__sms"])
        < 0.45
    )
    assert con.execute("select count(*) from tideline_sync.launch_decisions").fetchone()[0] == 0  # not yet
    launchers = con.execute(
        "select distinct launched_by from tideline_sync.sync_runs where not starts_with(sync_key, 'journey__')"
    ).fetchall()
    assert launchers == [("dagster:manual",)]  # execute_in_process: no schedule, sensor or named person


def _planted_personal_data(raw: Path, truth: Path) -> dict[str, set[str]]:
    """The emails, phones and names the generator wrote into the landing zone (raw and normalised)."""
    con = duckdb.connect()
    contacts = con.execute(
        "select email, phone, first_name, last_name from read_csv(?, all_varchar = true)",
        [str(raw / "crm" / "contacts" / "*.csv")],
    ).fetchall()
    order_emails = con.execute(
        "select distinct email from read_parquet(?) where email is not null",
        [str(raw / "commerce" / "orders" / "**" / "*.parquet")],
    ).fetchall()
    normalised = con.execute(
        "select email_normalised, phone_e164 from read_parquet(?)", [str(truth / "customers.parquet")]
    ).fetchall()
    found: dict[str, set[str]] = {"email": set(), "phone": set(), "name": set(), "name_word": set()}
    for email, phone, first, last in contacts:
        found["email"].add(email)
        found["phone"].add(phone)
        found["name"].add(f"{first} {last}" if first and last else None)
        found["name_word"].update((first, last))  # alone, as a column of names would show them
    found["email"].update(e for (e,) in order_emails)
    for email, phone in normalised:
        found["email"].add(email)
        found["phone"].add(phone)
    # at least 6 characters: skips blanks, malformed stubs and short names ("Lee", "Koch") that are
    # too likely to be part of something else
    return {kind: {v.strip() for v in values if v and len(v.strip()) >= 6} for kind, values in found.items()}


def test_the_demo_journeys_reach_every_step_and_send_only_with_consent(demo_run) -> None:
    """Each demo journey (config/journeys) entered customers and, over the three days the demo ticks
    them, moved some through every step; its messages went to consenting customers only, once."""
    from activation.journeys.files import journeys_dir, load_project_journeys

    con = demo_run.con
    reached = con.execute(
        "select journey, list(distinct to_node) from tideline_journeys.steps where to_node is not null group by 1"
    ).fetchall()
    reached = {journey: set(nodes) for journey, nodes in reached}
    journeys = load_project_journeys(journeys_dir())
    assert {j.name for j in journeys} == {"cart_abandonment", "welcome_series", "win_back_30d"}
    for journey in journeys:
        assert {s.id for s in journey.steps} <= reached.get(journey.name, set()), journey.name
    held_out = con.execute(
        "select count(*) from tideline_journeys.entries where holdout and exit_reason = 'holdout'"
    ).fetchone()[0]
    assert held_out > 0
    sent = con.execute(
        """select count(*), count(distinct idempotency_key) from tideline_sync.delivery_ledger
           where campaign like 'journey:%' and status = 'sent'"""
    ).fetchone()
    assert sent[0] > 0 and sent[0] == sent[1]
    leaks = con.execute(
        """select count(*) from tideline_sync.delivery_ledger as l join marts.dim_customers as c using (customer_id)
           where l.campaign like 'journey:%' and l.status = 'sent'
             and ((l.channel = 'email' and not c.email_opt_in) or (l.channel = 'sms' and not c.sms_opt_in)
                  or (l.channel = 'push' and not c.push_opt_in))"""
    ).fetchone()[0]
    assert leaks == 0


def test_the_runs_event_log_holds_no_personal_data(demo_run) -> None:
    """Previews, check results, log messages: nothing Dagster stores names an email, phone or person."""
    planted = _planted_personal_data(demo_run.summary.out_dir, demo_run.summary.truth_dir)
    sizes = {kind: len(values) for kind, values in planted.items()}
    assert min(sizes["email"], sizes["phone"], sizes["name"]) > 300 and sizes["name_word"] > 50, sizes
    log = demo_run.event_log
    assert "dagster/row_count" in log and "preview" in log  # the scan reads the metadata
    words = planted.pop("name_word")
    leaked = {kind: sorted(v for v in values if v in log)[:5] for kind, values in planted.items()}
    # single first and last names as whole words, case-sensitive
    leaked["name_word"] = sorted(w for w in words if re.search(rf"(?<!\w){re.escape(w)}(?!\w)", log))[:5]
    assert leaked == {"email": [], "phone": [], "name": [], "name_word": []}
    assert not re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", log), "an email address"
