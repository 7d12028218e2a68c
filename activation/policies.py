"""Policies applied to a plan before anything is sent, each decision recorded per record.

In this order, the first that applies decides:

    no_consent     channel bindings: the latest consent for the channel (dim_customers) is not granted
    suppressed     on the suppression list for the channel or for all channels: the operators'
                   list tideline_sync.suppressions, and the hard bounces and complaints the
                   engagement marts found (marts.engagement_suppressions, when it exists);
                   the reason is `suppressed:<reason>`, e.g. suppressed:hard_bounced
    frequency_cap  message mode: the customer already got the cap class's maximum on this
                   channel in the rolling window, across all campaigns
    holdout        message mode: a stable hash of (campaign, customer) below holdout_share
                   puts the customer in the control group (recorded, never sent). It comes
                   after the checks above, so the holdout holds only customers who could have
                   been sent to, like the treated group it is compared with (experiment_results)
    quiet_hours    message mode: it is night in the customer's time zone: deferred, not dropped;
                   `not_before` is when quiet hours end there (UTC), stored with the deferral

Everything else is sent. Variants: a second stable hash assigns each customer a variant
by the configured weights, so a customer always gets the same variant of a campaign.
`stable_unit(salt, customer_id)` is the same hash in Python, for tests and analysis.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import duckdb

from activation.config import PolicyConfig, SyncBinding
from activation.ledger import SCHEMA
from activation.warehouse import table_exists


def stable_unit(salt: str, customer_id: str) -> float:
    """A number in [0, 1) fixed for (salt, customer): the first 32 bits of md5."""
    return int(hashlib.md5(f"{salt}|{customer_id}".encode()).hexdigest()[:8], 16) / 2**32


def _unit_sql(salt: str, column: str = "p.customer_id") -> str:
    salt = salt.replace("'", "''")
    return f"(('0x' || substr(md5('{salt}|' || {column}), 1, 8))::ubigint / 4294967296.0)"


def _variant_sql(binding: SyncBinding) -> str:
    if not binding.variants:
        return "cast(null as varchar)"
    u = _unit_sql(f"variant|{binding.campaign}")
    cases, cumulative = [], 0.0
    names = sorted(binding.variants)
    for name in names[:-1]:
        cumulative += binding.variant_weights[name]
        cases.append(f"when {u} < {cumulative!r} then '{name}'")
    return f"case {' '.join(cases)} else '{names[-1]}' end"


ENGAGEMENT_SUPPRESSIONS = "marts.engagement_suppressions"


def _suppressions_sql(con: duckdb.DuckDBPyConnection, engagement_suppressions: str | None) -> str:
    """Every suppression as (customer_id, channel, reason): the operators' list, plus the marts'
    hard bounces and complaints once dbt has built them (a fresh warehouse has only the former)."""
    sql = f"select customer_id, channel, reason from {SCHEMA}.suppressions"
    schema, _, table = (engagement_suppressions or "").rpartition(".")
    if engagement_suppressions and table_exists(con, schema or "main", table):
        sql += f" union all select customer_id, channel, reason from {engagement_suppressions}"
    return sql


def apply_policies(
    con: duckdb.DuckDBPyConnection,
    binding: SyncBinding,
    policies: PolicyConfig,
    now: dt.datetime,
    customers: str = "marts.dim_customers",
    engagement_suppressions: str | None = ENGAGEMENT_SUPPRESSIONS,
) -> None:
    """Create _decided from _plan: each row gets `decision` (send, skip, holdout, defer), `reason`, `variant`."""
    message = binding.mode == "message"
    channel = binding.channel
    consent_col = {"email": "email_opt_in", "sms": "sms_opt_in", "push": "push_opt_in"}.get(channel or "")
    cap = policies.frequency_caps.get(binding.frequency_cap or "", {}).get(channel or "") if message else None
    now_lit = f"timestamp '{now:%Y-%m-%d %H:%M:%S}'"
    # (condition, decision, reason as a SQL expression); the first that holds decides
    conditions: list[tuple[str, str, str]] = []
    if consent_col:
        conditions.append((f"not coalesce(c.{consent_col}, false)", "skip", "'no_consent'"))
    conditions.append(("sup.reason is not null", "skip", "'suppressed:' || sup.reason"))
    if cap is not None:
        conditions.append((f"coalesce(fc.sent, 0) >= {cap.max_messages}", "skip", "'frequency_cap'"))
    # the holdout is drawn from the customers who could be sent to (after consent, suppression
    # and caps), so holdout and treated are comparable; quiet hours only delay a send
    if message and binding.holdout_share > 0:
        unit = _unit_sql(f"holdout|{binding.campaign}")
        conditions.append((f"{unit} < {binding.holdout_share!r}", "holdout", "'holdout'"))
    if message and channel:
        start, end = policies.quiet_hours_start, policies.quiet_hours_end
        zone = f"coalesce(tz.name, '{policies.default_timezone}')"
        hour = f"hour(timezone({zone}, timezone('UTC', {now_lit})))"
        quiet = (
            f"({hour} >= {start} or {hour} < {end})"
            if start > end
            else f"({hour} >= {start} and {hour} < {end})"
        )
        conditions.append((quiet, "defer", "'quiet_hours'"))
        # when quiet hours end next in the customer's zone, in UTC: the ledger stores it, and the
        # deferred-messages sensor runs the sync again once it has passed
        local = f"timezone({zone}, timezone('UTC', {now_lit}))"
        next_end = (
            f"(date_trunc('day', {local}) + interval {int(end)} hour"
            f" + case when hour({local}) >= {int(end)} then interval 1 day else interval 0 day end)"
        )
        not_before = f"case when ({quiet}) then timezone('UTC', timezone({zone}, {next_end})) end"
    else:
        not_before = "cast(null as timestamp)"

    decision = "case " + " ".join(f"when {c} then '{d}'" for c, d, _ in conditions) + " else 'send' end"
    reason = "case " + " ".join(f"when {c} then {r}" for c, _, r in conditions) + " end"
    channel_filter = f"sup_all.channel in ('all', '{channel}')" if channel else "sup_all.channel = 'all'"
    cap_join = ""
    if cap is not None:
        cap_join = f"""left join (
                select customer_id, count(*) as sent from {SCHEMA}.delivery_log
                where status = 'sent' and channel = '{channel}'
                  and recorded_at >= {now_lit} - to_days({int(cap.days)})
                group by customer_id
            ) as fc on p.customer_id = fc.customer_id"""
    suppressions = _suppressions_sql(con, engagement_suppressions)
    deletes_pass = "when p.action = 'delete' then 'send'"  # a removal is never blocked by consent or caps
    quiet = message and channel
    # the customer table is joined only when a policy reads it (consent, time zone)
    customer_join = (
        f"left join {customers} as c on p.customer_id = c.customer_id" if consent_col or quiet else ""
    )
    tz_join = (
        "left join (select name from pg_timezone_names()) as tz on c.timezone = tz.name" if quiet else ""
    )
    con.execute(
        f"""create or replace temp table _decided as
            select p.*,
                   case {deletes_pass} else ({decision}) end as decision,
                   case when p.action = 'delete' then null else ({reason}) end as reason,
                   {_variant_sql(binding) if message else "cast(null as varchar)"} as variant,
                   {not_before} as not_before
            from _plan as p
            {customer_join}
            {tz_join}
            left join (
                select customer_id, min(reason) as reason from ({suppressions}) as sup_all
                where {channel_filter} group by customer_id
            ) as sup on p.customer_id = sup.customer_id
            {cap_join}"""
    )
