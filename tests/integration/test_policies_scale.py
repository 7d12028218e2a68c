"""Issue 19: planning and policies stay within the sync's default DuckDB memory limit at any ledger size.

A warehouse file with 1,000,000 customers, a 250,000-customer segment and a delivery ledger of
about 4.6 million events, generated directly in SQL (nothing is sent to build it): every customer
got one email in the last days (the first run of a campaign at this size writes about that many
rows), some got more (frequency caps), the segment's own campaign was sent, skipped or deferred
before, and three million older events of other syncs fill the log. Then, under the default
limits (activation.warehouse.DuckDBLimits: 128MB, 2 threads), real dry runs of the engine plan
and apply the policies to a message sync and to an upsert sync with a large synced_state, and
the deferred-messages query and the ledger view answer. Expected decisions are computed here,
per customer, from the rules (consent, caps, holdout hash, quiet hours in Tokyo at noon UTC).
Before the fix the policy query ran out of memory ("failed to pin block"), as at 1M demo customers.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from activation.config import FrequencyCap, PolicyConfig, SyncBinding
from activation.destinations.webhook import WebhookDestination
from activation.engine import SyncEngine
from activation.ledger import due_deferrals, ensure_schema
from activation.policies import stable_unit
from activation.warehouse import DuckDBLimits, limited

pytestmark = pytest.mark.slow

CUSTOMERS = 1_000_000
FILLER_EVENTS = 3_000_000
NOON = dt.datetime(2026, 3, 2, 12, 0)  # 21:00 in Tokyo (quiet hours), 13:00 in Berlin
DEFERRED_UNTIL = dt.datetime(2026, 3, 2, 8, 0)
CAMPAIGN = "win_back"
POLICIES = PolicyConfig(
    frequency_caps={"marketing": {"email": FrequencyCap(3, 7)}}, quiet_hours_start=21, quiet_hours_end=8
)


def _id(i: int) -> str:
    return f"C{i:07d}"


def _build(con: duckdb.DuckDBPyConnection) -> None:
    """The warehouse, in SQL. Customer i: email consent unless i % 7 = 0; Tokyo when i % 5 = 0,
    else Berlin; in the segment when i % 4 = 0. Ledger: every customer one email two days ago;
    i % 11 = 0 two more in the cap window (3: capped), i % 11 = 1 two more eight days ago (not
    capped). The segment's own campaign key: sent when i % 3 = 0 (not planned again), skipped
    when i % 3 = 1, deferred until 08:00 today when i % 3 = 2 (both planned again)."""
    n, key = CUSTOMERS, "'C' || lpad(cast(i as varchar), 7, '0')"
    con.execute("create schema marts")
    con.execute(
        f"""create table marts.dim_customers as
            select {key} as customer_id, 'c' || i || '@example.com' as email, '+4915' || i as phone,
                   'First' || (i % 997) as first_name, 'Last' || (i % 991) as last_name, 'DE' as country,
                   case when i % 5 = 0 then 'Asia/Tokyo' else 'Europe/Berlin' end as timezone,
                   i % 7 <> 0 as email_opt_in, timestamp '2026-01-01' as email_consent_at,
                   (i % 101) * 12.5 as revenue
            from range({n}) as t(i)"""
    )
    con.execute(
        f"""create table marts.win_back as
            select {key} as customer_id, 'c' || i || '@example.com' as email, 'First' || (i % 997) as first_name
            from range(0, {n}, 4) as t(i)"""
    )
    ensure_schema(con)
    columns = """(idempotency_key, sync_key, sync_id, customer_id, action, status, reason, attempt,
                  channel, campaign, content_version, recorded_at, not_before)"""
    # older events of other syncs: the bulk of the log
    con.execute(
        f"""insert into tideline_sync.delivery_log {columns}
            select cast(md5('filler' || i) as uuid), 'other_' || (i % 5) || '__sync', 'old',
                   'C' || lpad(cast(i % {n} as varchar), 7, '0'), 'send',
                   (['sent', 'skipped', 'holdout', 'failed'])[1 + i % 4], null, 1,
                   (['sms', 'push', 'email'])[1 + i % 3], 'old_' || (i % 5), 'v1',
                   timestamp '2026-03-02 12:00' - to_days(30 + i % 60), null
            from range({FILLER_EVENTS}) as t(i)"""
    )
    # one email per customer two days ago; the capped and the not-capped extras
    con.execute(
        f"""insert into tideline_sync.delivery_log {columns}
            select cast(md5('welcome' || i) as uuid), 'welcome__email', 'w', {key}, 'send', 'sent', null, 1,
                   'email', 'welcome', 'v1', timestamp '2026-02-28 10:00', null
            from range({n}) as t(i)"""
    )
    con.execute(
        f"""insert into tideline_sync.delivery_log {columns}
            select cast(md5('extra' || i || '|' || j) as uuid), 'extra__email', 'x', {key}, 'send', 'sent', null, 1,
                   'email', 'extra', 'v1',
                   case when i % 11 = 0 then timestamp '2026-03-01 09:00' else timestamp '2026-02-22 09:00' end, null
            from range({n}) as t(i), range(2) as u(j) where i % 11 in (0, 1)"""
    )
    message_key = (
        f"cast(substr(sha256(concat_ws('|', 'email', 'win_back', {key}, '{CAMPAIGN}:v1')), 1, 32) as uuid)"
    )
    con.execute(
        f"""insert into tideline_sync.delivery_log {columns}
            select {message_key}, 'win_back__email', 'first', {key}, 'send',
                   (['sent', 'skipped', 'deferred'])[1 + i % 3],
                   ([null, 'no_consent', 'quiet_hours'])[1 + i % 3], 1, 'email', '{CAMPAIGN}', 'v1',
                   timestamp '2026-03-01 22:00',
                   case when i % 3 = 2 then timestamp '2026-03-02 08:00' end
            from range(0, {n}, 4) as t(i)"""
    )
    # the upsert sync's state: every even customer, with a hash no row has (all changed)
    con.execute(
        f"""insert into tideline_sync.synced_state
            select 'win_back__crm', {key}, 0, timestamp '2026-03-01', null, null from range(0, {n}, 2) as t(i)"""
    )
    con.execute(
        f"""insert into tideline_sync.suppressions
            select {key}, 'all', 'erased', timestamp '2026-02-01' from range(0, {n}, 1000) as t(i)"""
    )
    con.execute("checkpoint")


def _expected_message_decisions() -> Counter:
    """What the message sync must decide, from the rules, for every planned customer."""
    decided: Counter = Counter()
    for i in range(0, CUSTOMERS, 4):
        if i % 3 == 0:  # sent before: never planned again
            continue
        if i % 7 == 0:
            decided["no_consent"] += 1
        elif i % 1000 == 0:
            decided["suppressed:erased"] += 1
        elif i % 11 == 0:
            decided["frequency_cap"] += 1
        elif stable_unit(f"holdout|{CAMPAIGN}", _id(i)) < 0.1:
            decided["holdout"] += 1
        elif i % 5 == 0:
            decided["quiet_hours"] += 1
        else:
            decided["send"] += 1
    return decided


def _binding(mode: str, channel: str | None, destination: str) -> SyncBinding:
    return SyncBinding(
        segment="win_back",
        relation="marts.win_back",
        destination=destination,
        mode=mode,
        channel=channel,
        fields={"email": "email", "first_name": "first_name"},
        campaign=CAMPAIGN,
        holdout_share=0.1 if mode == "message" else 0.0,
    )


def test_a_large_ledger_plans_within_the_default_memory_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute("set TimeZone = 'UTC'")
    _build(con)
    assert con.execute("select count(*) from tideline_sync.delivery_log").fetchone()[0] > 4_500_000
    monkeypatch.setenv("TEST_SCALE_SECRET", "s")
    destination = WebhookDestination.from_config(  # dry runs: nothing is sent to it
        "email", {"url": "http://127.0.0.1:9/never", "secret_env": "TEST_SCALE_SECRET"}
    )
    limits = DuckDBLimits.resolve(env={})  # the default: what a sync runs under
    assert (limits.memory_limit, limits.threads) == ("128MB", 2)

    with limited(con, limits, "the scale test"):
        message = SyncEngine(con, destination, _binding("message", "email", "email"), POLICIES, now=NOON).run(
            dry_run=True
        )
        upsert = SyncEngine(con, destination, _binding("upsert", None, "crm"), POLICIES, now=NOON).run(
            dry_run=True
        )
        due = due_deferrals(con, NOON)
        latest = dict(
            con.execute(
                "select status, count(*) from tideline_sync.delivery_ledger where sync_key = 'win_back__email' "
                "group by 1"
            ).fetchall()
        )

    expected = _expected_message_decisions()
    segment = CUSTOMERS // 4
    assert message.counts["segment_rows"] == segment
    assert message.counts["planned"] == sum(expected.values())  # the keys sent before are not planned
    assert message.counts["would_send"] == expected.pop("send")
    assert message.skipped_by_reason == dict(expected)
    assert expected["frequency_cap"] > 10_000 and expected["quiet_hours"] > 10_000

    # upsert: the state's customers in the segment changed (hash 0), the others are added
    in_state = len(range(0, CUSTOMERS, 4))  # every 4th is even: all of the segment has state
    assert (upsert.counts["added"], upsert.counts["changed"], upsert.counts["removed"]) == (0, in_state, 0)
    erased = len(range(0, CUSTOMERS, 1000))
    assert upsert.skipped_by_reason == {"suppressed:erased": erased}
    assert upsert.counts["would_send"] == in_state - erased

    assert due == {"win_back__email": DEFERRED_UNTIL}
    statuses = ("sent", "skipped", "deferred")
    assert latest == dict(Counter(statuses[i % 3] for i in range(0, CUSTOMERS, 4)))
    con.close()
