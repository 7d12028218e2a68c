"""activation.policies on a small hand-made warehouse: the rules whose cases are easiest to see
one customer at a time (consent against receiver revocations, what a frequency cap counts)."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid

import duckdb

from activation import planner
from activation.config import FrequencyCap, PolicyConfig, SyncBinding
from activation.ledger import ensure_schema
from activation.policies import apply_policies

NOW = dt.datetime(2026, 3, 2, 12, 0)
BINDING = SyncBinding("seg", "marts.seg", "esp", "message", "email", {"email": "email"}, "spring")
DEFAULTS = PolicyConfig()  # no caps; quiet hours 21-8, and it is noon in UTC


def _warehouse(consent_at: bool = True) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    con.execute("create schema marts")
    consent = ", timestamp '2026-03-01 10:00:00' as email_consent_at" if consent_at else ""
    con.execute(
        f"""create table marts.dim_customers as
            select 'c' || i as customer_id, 'UTC' as timezone, true as email_opt_in {consent}
            from range(1, 7) t(i)"""
    )
    con.execute(
        "create table marts.seg as select customer_id, customer_id || '@x.example' as email from marts.dim_customers"
    )
    ensure_schema(con)
    return con


def _decide(con: duckdb.DuckDBPyConnection, policies: PolicyConfig = DEFAULTS) -> dict[str, str]:
    planner.plan(con, BINDING)
    apply_policies(con, BINDING, policies, NOW)
    return dict(con.execute("select customer_id, coalesce(reason, decision) from _decided").fetchall())


_OFFSETS = itertools.count()


def _revoke(con: duckdb.DuckDBPyConnection, customer: str, at: str, channel: str = "email") -> None:
    con.execute(
        """insert into tideline_sync.consent_revocations
           values (?, ?, cast(? as timestamp), 'unsubscribe link', 'f.jsonl', ?, now()::timestamp)""",
        [customer, channel, at, next(_OFFSETS)],
    )


def test_the_later_of_consent_and_revocation_wins() -> None:
    con = _warehouse()  # every customer's latest email consent: granted at 2026-03-01 10:00
    _revoke(con, "c1", "2026-03-02 09:00")  # after the grant: revoked
    _revoke(con, "c2", "2026-02-28 09:00")  # before the grant (the customer opted in again): granted
    _revoke(con, "c3", "2026-03-01 10:00")  # the same instant: the revocation wins
    _revoke(con, "c4", "2026-03-02 09:00", channel="sms")  # another channel: email still granted
    assert _decide(con) == {
        "c1": "no_consent",
        "c2": "send",
        "c3": "no_consent",
        "c4": "send",
        "c5": "send",
        "c6": "send",
    }


def test_without_a_consent_time_any_revocation_stops_the_send() -> None:
    con = _warehouse(consent_at=False)  # a customer table from before <channel>_consent_at
    _revoke(con, "c2", "2020-01-01 00:00")
    assert _decide(con)["c2"] == "no_consent"


def _log(
    con: duckdb.DuckDBPyConnection, customer: str, status: str, days_ago: float, key: str | None = None
) -> None:
    con.execute(
        """insert into tideline_sync.delivery_log (idempotency_key, sync_key, sync_id, customer_id, action,
               status, attempt, channel, campaign, content_version, recorded_at)
           values (?, 'other__esp', 'r', ?, 'send', ?, 1, 'email', 'other', 'v1', ?)""",
        [key or str(uuid.uuid4()), customer, status, NOW - dt.timedelta(days=days_ago)],
    )


def test_a_frequency_cap_counts_possibly_delivered_messages_once_each() -> None:
    con = _warehouse()
    _log(con, "c1", "sent", 1)
    _log(con, "c1", "unknown", 2)  # a timeout or crash left it maybe delivered: it counts
    _log(con, "c2", "sent", 1)
    _log(con, "c2", "failed", 2)  # not delivered: it does not
    key = str(uuid.uuid4())
    _log(con, "c3", "unknown", 2, key)
    _log(con, "c3", "sent", 1, key)  # the same message, confirmed later: counted once
    _log(con, "c4", "sent", 1)
    _log(con, "c4", "sent", 8)  # outside the 7-day window
    policies = PolicyConfig(frequency_caps={"marketing": {"email": FrequencyCap(2, 7)}}, quiet_hours_start=0,
                            quiet_hours_end=0)  # fmt: skip
    decided = _decide(con, policies)
    assert {c: r for c, r in decided.items() if r == "frequency_cap"} == {"c1": "frequency_cap"}
