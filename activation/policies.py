"""Policies applied to a plan before anything is sent, each decision recorded per record.

In this order, the first that applies decides:

    no_consent     channel bindings: the customer's consent for the channel is not granted. The
                   latest consent event wins: dbt's (dim_customers.<channel>_opt_in, decided by the
                   latest consent on or before the as-of date, at <channel>_consent_at), or a
                   revocation the engagement receiver recorded since (an unsubscribe or complaint,
                   taken in by activation.intake before every sync into
                   tideline_sync.consent_revocations), whichever is later; a revocation wins a
                   tie. So an unsubscribe stops the very next send with no dbt rebuild, and a
                   later consent grant (a newer crm/consents row, once dbt has built it) lifts it.
    suppressed     on the suppression list for the channel or for all channels: the operators'
                   list tideline_sync.suppressions, and the hard bounces and complaints the
                   engagement marts found (marts.engagement_suppressions, when it exists);
                   the reason is `suppressed:<reason>`, e.g. suppressed:hard_bounced
    frequency_cap  message mode: the customer already got the cap class's maximum on this
                   channel in the rolling window, across all campaigns: messages `sent`, and
                   `unknown` ones (a crash or timeout left them possibly delivered), each once
    holdout        message mode: a stable hash of (campaign, customer) below holdout_share
                   puts the customer in the control group (recorded, never sent). It comes
                   after the checks above, so the holdout holds only customers who could have
                   been sent to, like the treated group it is compared with (experiment_results)
    quiet_hours    message mode: it is night in the customer's time zone: deferred, not dropped;
                   `not_before` is when quiet hours end there (UTC), stored with the deferral

Everything else is sent. Variants: a second stable hash assigns each customer a variant
by the configured weights, so a customer always gets the same variant of a campaign.
`stable_unit(salt, customer_id)` is the same hash in Python, for tests and analysis.

Bounded memory at any ledger size and segment size: the decision depends on the customer only,
so it is made once per planned customer, in small steps that each hold one narrow temp table
(DuckDB spills them beyond its memory limit): the plan without its payloads (_planned) and its
customers (_audience); their consent, suppressions, receiver revocations and cap counts, each
read with a semi-join on _audience (the ledger is streamed and pre-aggregated, never joined
whole); the quiet hours of each of their time zones (_quiet_zones: worked out once per zone, not
once per customer); the verdict per customer (_verdicts, each rule's condition evaluated once)
and per planned key (_decisions); and last _decided, the planned rows of _diff with their
decision, in one inner join. Config text (campaign, variant names, time zone, channel) is bound,
never spliced into the SQL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from typing import Any

import duckdb

from activation.config import FrequencyCap, PolicyConfig, SyncBinding
from activation.ledger import SCHEMA
from activation.warehouse import columns_of, execute, literal, quote_identifier, quote_relation, table_exists

log = logging.getLogger(__name__)

ENGAGEMENT_SUPPRESSIONS = "marts.engagement_suppressions"
CAP_STATUSES = ("sent", "unknown")  # what counts against a frequency cap (unknown: maybe delivered)
CONSENT_COLUMNS = {"email": "email_opt_in", "sms": "sms_opt_in", "push": "push_opt_in"}
WORK_TABLES = (
    "_planned",
    "_audience",
    "_customer_facts",
    "_suppressed",
    "_revoked",
    "_capped",
    "_quiet_zones",
    "_verdicts",
    "_decisions",
)


def stable_unit(salt: str, customer_id: str) -> float:
    """A number in [0, 1) fixed for (salt, customer): the first 32 bits of md5."""
    return int(hashlib.md5(f"{salt}|{customer_id}".encode()).hexdigest()[:8], 16) / 2**32


def _unit_sql(salt_param: str, column: str = "a.customer_id") -> str:
    """stable_unit in SQL; the salt is the bound parameter `salt_param` (it holds config text)."""
    return f"(('0x' || substr(md5(${salt_param} || '|' || {column}), 1, 8))::ubigint / 4294967296.0)"


def _variant_sql(binding: SyncBinding, values: dict[str, Any]) -> str:
    """The variant of each customer by the weights; names and thresholds are bound into `values`."""
    if not binding.variants:
        return "cast(null as varchar)"
    values["variant_salt"] = f"variant|{binding.campaign}"
    u = _unit_sql("variant_salt")
    cases, cumulative = [], 0.0
    names = sorted(binding.variants)
    for i, name in enumerate(names[:-1]):
        cumulative += binding.variant_weights[name]
        values[f"variant_{i}"], values[f"variant_{i}_below"] = name, cumulative
        cases.append(f"when {u} < $variant_{i}_below then $variant_{i}")
    values["variant_last"] = names[-1]
    if not cases:  # one variant (a journey step's split arm): everyone gets it
        return "$variant_last"
    return f"case {' '.join(cases)} else $variant_last end"


def _suppressions_sql(con: duckdb.DuckDBPyConnection, engagement_suppressions: str | None) -> str:
    """Every suppression as (customer_id, channel, reason): the operators' list, plus the marts'
    hard bounces and complaints once dbt has built them (a fresh warehouse has only the former)."""
    sql = f"select customer_id, channel, reason from {SCHEMA}.suppressions"
    schema, _, table = (engagement_suppressions or "").rpartition(".")
    if engagement_suppressions and table_exists(con, schema or "main", table):
        sql += (
            f" union all select customer_id, channel, reason from {quote_relation(engagement_suppressions)}"
        )
    return sql


def apply_policies(
    con: duckdb.DuckDBPyConnection,
    binding: SyncBinding,
    policies: PolicyConfig,
    now: dt.datetime,
    customers: str = "marts.dim_customers",
    engagement_suppressions: str | None = ENGAGEMENT_SUPPRESSIONS,
) -> None:
    """Create _decided from _plan: each row gets `decision` (send, skip, holdout, defer), `reason`,
    `variant` and `not_before`. The steps' work tables are dropped as soon as they are read, and on
    an error too (they can hold a whole plan's keys)."""
    try:
        _decide(con, binding, policies, now, customers, engagement_suppressions)
    except BaseException:
        _drop(con, WORK_TABLES)
        raise


def _drop(con: duckdb.DuckDBPyConnection, tables: tuple[str, ...]) -> None:
    for table in tables:  # names of this module
        try:
            con.execute(f"drop table if exists {table}")
        except duckdb.Error as exc:  # never hide the error being raised behind a cleanup one
            log.debug("could not drop %s: %s", table, exc)


def _decide(
    con: duckdb.DuckDBPyConnection,
    binding: SyncBinding,
    policies: PolicyConfig,
    now: dt.datetime,
    customers: str,
    engagement_suppressions: str | None,
) -> None:
    values: dict[str, Any] = {
        "now": now.replace(tzinfo=None),
        "channel": binding.channel,
        "default_zone": policies.default_timezone,
        "holdout_salt": f"holdout|{binding.campaign}",
        "holdout_share": float(binding.holdout_share),
    }
    # the plan without its payloads, and the customers it would send to (a removal is never
    # blocked by consent or caps)
    con.execute(
        """create or replace temp table _planned as
           select idempotency_key, customer_id, action, ledger_status, ledger_reason, ledger_not_before, attempts
           from _plan"""
    )
    con.execute(
        "create or replace temp table _audience as select distinct customer_id from _planned where action <> 'delete'"
    )
    joins = _gather_facts(con, binding, policies, customers, engagement_suppressions, values)
    quiet = bool(binding.mode == "message" and binding.channel)
    if quiet:
        _quiet_zones(con, "f" in joins, policies, values)
    conditions, not_before = _rules_sql(binding, policies, joins, values)
    variant = _variant_sql(binding, values) if binding.mode == "message" else "cast(null as varchar)"
    # each rule's condition is evaluated once per customer (inner select), then the first that
    # holds decides (outer select)
    flags = ", ".join(f"({c}) as _c{i}, {r} as _r{i}" for i, (c, _, r) in enumerate(conditions))
    decision = "case " + " ".join(f"when _c{i} then '{d}'" for i, (_, d, _) in enumerate(conditions))
    reason = "case " + " ".join(f"when _c{i} then _r{i}" for i in range(len(conditions)))
    zone = "coalesce(f.zone, $default_zone)" if "f" in joins else "$default_zone"
    zone_join = f"left join _quiet_zones as z on z.zone = {zone}" if quiet else ""
    execute(
        con,
        f"""create or replace temp table _verdicts as
            select customer_id, {decision + " else 'send' end" if conditions else "'send'"} as decision,
                   {reason + " end" if conditions else "cast(null as varchar)"} as reason, variant, not_before
            from (
                select a.customer_id, {flags + "," if flags else ""} {variant} as variant, {not_before} as not_before
                from _audience as a
                {" ".join(f"left join {table} as {alias} on a.customer_id = {alias}.customer_id" for alias, table in joins.items())}
                {zone_join})""",
        values,
    )
    _drop(con, ("_audience", "_quiet_zones", *joins.values()))  # free their memory before the last two steps
    _attach_decisions(con)


def _gather_facts(
    con: duckdb.DuckDBPyConnection,
    binding: SyncBinding,
    policies: PolicyConfig,
    customers: str,
    engagement_suppressions: str | None,
    values: dict[str, Any],
) -> dict[str, str]:
    """The per-customer facts the rules read, each a temp table keyed by the planned customers:
    {alias in the rules: table}. Only what applies to the binding is read."""
    message, channel = binding.mode == "message", binding.channel
    joins: dict[str, str] = {}
    consent = _customer_facts(con, binding, customers, quiet=bool(message and channel))
    if consent is not None:
        joins["f"] = "_customer_facts"
    _suppressed(con, channel, engagement_suppressions, values)
    joins["s"] = "_suppressed"
    if consent and _revoked(con, channel, values):
        joins["r"] = "_revoked"
    cap = policies.frequency_caps.get(binding.frequency_cap or "", {}).get(channel or "") if message else None
    if cap is not None:
        _capped(con, cap, values)
        values["cap_max"] = int(cap.max_messages)
        joins["k"] = "_capped"
    return joins


def _rules_sql(
    binding: SyncBinding, policies: PolicyConfig, joins: dict[str, str], values: dict[str, Any]
) -> tuple[list[tuple[str, str, str]], str]:
    """([(condition, decision, reason)] in order, not_before) as SQL over the facts in `joins` (and
    `z`, the customer's zone in _quiet_zones, for quiet hours): the first rule that holds decides."""
    message = binding.mode == "message"
    conditions: list[tuple[str, str, str]] = []  # (condition, decision, reason as a SQL expression)
    if CONSENT_COLUMNS.get(binding.channel or ""):
        granted = "coalesce(f.opt_in, false)"
        if "r" in joins:  # a receiver revocation at or after dbt's latest consent event wins
            granted += (
                " and (r.revoked_at is null or (f.consent_at is not null and f.consent_at > r.revoked_at))"
            )
        conditions.append((f"not ({granted})", "skip", "'no_consent'"))
    conditions.append(("s.reason is not null", "skip", "'suppressed:' || s.reason"))
    if "k" in joins:
        conditions.append(("coalesce(k.sent, 0) >= $cap_max", "skip", "'frequency_cap'"))
    # the holdout is drawn from the customers who could be sent to (after consent, suppression
    # and caps), so holdout and treated are comparable; quiet hours only delay a send
    if message and binding.holdout_share > 0:
        conditions.append((f"{_unit_sql('holdout_salt')} < $holdout_share", "holdout", "'holdout'"))
    not_before = "cast(null as timestamp)"
    if message and binding.channel:
        conditions.append(("coalesce(z.quiet, false)", "defer", "'quiet_hours'"))
        not_before = "case when z.quiet then z.quiet_until end"
    return conditions, not_before


def _attach_decisions(con: duckdb.DuckDBPyConnection) -> None:
    """_decided: the planned rows of _diff with their customer's verdict (a removal is sent). The
    decision per planned key is made without payloads first (_decisions: narrow rows, whatever the
    plan's size), then joined to _diff's rows once (a key in _diff is planned at most once), an
    inner join DuckDB can spill."""
    con.execute(
        """create or replace temp table _decisions as
           select p.idempotency_key, p.ledger_status, p.ledger_reason, p.ledger_not_before, p.attempts,
                  case when p.action = 'delete' then 'send' else v.decision end as decision,
                  case when p.action = 'delete' then null else v.reason end as reason,
                  case when p.action = 'delete' then null else v.variant end as variant,
                  case when p.action = 'delete' then null else v.not_before end as not_before
           from _planned as p left join _verdicts as v on p.customer_id = v.customer_id"""
    )
    _drop(con, ("_planned", "_verdicts"))
    con.execute(
        """create or replace temp table _decided as
           select d.customer_id, d.action, d.change, d.field_hash, d.fields_json, d.generation, d.idempotency_key,
                  x.ledger_status, x.ledger_reason, x.ledger_not_before, x.attempts, x.decision, x.reason, x.variant, x.not_before,
                  cast(null as varchar) as stage  -- a staged launch's stage (activation.launches)
           from _diff as d inner join _decisions as x on d.idempotency_key = x.idempotency_key"""
    )
    _drop(con, ("_decisions",))


def _customer_facts(
    con: duckdb.DuckDBPyConnection, binding: SyncBinding, customers: str, quiet: bool
) -> bool | None:
    """_customer_facts: the planned customers' consent for the channel (opt_in, consent_at) and
    valid IANA time zone (zone), from the customer table; only what the policies read is read.
    A customer table without <channel>_consent_at (an older dim_customers) reads it as null.
    Returns whether consent applies, or None when the table was not needed (and not made)."""
    consent_col = CONSENT_COLUMNS.get(binding.channel or "")
    if not consent_col and not quiet:
        return None
    present = columns_of(con, customers)
    select = ["c.customer_id"]
    if consent_col:
        select.append(f"c.{quote_identifier(consent_col)} as opt_in")
        at = f"{binding.channel}_consent_at"
        select.append(
            f"c.{quote_identifier(at)} as consent_at"
            if at in present
            else "cast(null as timestamp) as consent_at"
        )
    zone_join = ""
    if quiet:
        select.append("tz.name as zone")
        zone_join = "left join (select name from pg_timezone_names()) as tz on c.timezone = tz.name"
    con.execute(
        f"""create or replace temp table _customer_facts as
            select {", ".join(select)}
            from {quote_relation(customers)} as c {zone_join}
            where c.customer_id in (select customer_id from _audience)"""
    )
    return bool(consent_col)


def _suppressed(
    con: duckdb.DuckDBPyConnection, channel: str | None, engagement_suppressions: str | None, values: dict
) -> None:
    """_suppressed: the first suppression reason of each planned customer on the channel or 'all'."""
    channels = "channel in ('all', $channel)" if channel else "channel = 'all'"
    execute(
        con,
        f"""create or replace temp table _suppressed as
            select customer_id, min(reason) as reason
            from ({_suppressions_sql(con, engagement_suppressions)}) as sup
            where {channels} and customer_id in (select customer_id from _audience)
            group by customer_id""",
        values,
    )


def _revoked(con: duckdb.DuckDBPyConnection, channel: str | None, values: dict) -> bool:
    """_revoked: each planned customer's latest receiver revocation on the channel (or 'all')."""
    if not table_exists(con, SCHEMA, "consent_revocations"):
        return False
    execute(
        con,
        f"""create or replace temp table _revoked as
            select customer_id, max(revoked_at) as revoked_at
            from {SCHEMA}.consent_revocations
            where channel in ('all', $channel) and customer_id in (select customer_id from _audience)
            group by customer_id""",
        values,
    )
    return True


def _capped(con: duckdb.DuckDBPyConnection, cap: FrequencyCap, values: dict) -> None:
    """_capped: messages each planned customer got on the channel in the cap's rolling window
    (each message once, whatever events it has). The ledger is only scanned: the window bounds
    the rows (its zonemaps skip older row groups) and the semi-join on _audience the groups."""
    values["cap_since"] = values["now"] - dt.timedelta(days=int(cap.days))
    statuses = ", ".join(literal(s) for s in CAP_STATUSES)  # constants of this module
    execute(
        con,
        f"""create or replace temp table _capped as
            select customer_id, count(distinct idempotency_key) as sent
            from {SCHEMA}.delivery_log
            where status in ({statuses}) and channel = $channel and recorded_at >= $cap_since
              and customer_id in (select customer_id from _audience)
            group by customer_id""",
        values,
    )


def _quiet_zones(con: duckdb.DuckDBPyConnection, facts: bool, policies: PolicyConfig, values: dict) -> None:
    """_quiet_zones (zone, quiet, quiet_until): for each time zone of the planned customers (their
    valid IANA zone, else the configured default), whether it is quiet hours there now and when
    they end (UTC). The clock is the same for everyone, so the answer depends on the zone only:
    worked out once per zone (a few dozen), not once per customer (a time zone conversion is the
    costliest expression of the policies)."""
    quiet, quiet_until = _quiet_hours_sql(policies, values)
    zones = "select zone from _customer_facts where zone is not null union " if facts else ""
    execute(
        con,
        f"""create or replace temp table _quiet_zones as
            select zone, {quiet} as quiet, {quiet_until} as quiet_until
            from ({zones}select $default_zone as zone) as zones""",
        values,
    )


def _quiet_hours_sql(policies: PolicyConfig, values: dict) -> tuple[str, str]:
    """(is it quiet hours in `zone` now, when they end there in UTC): SQL over a column `zone`,
    the customer's valid IANA zone or the configured default (bound, never spliced)."""
    values["quiet_start"], values["quiet_end"] = (
        int(policies.quiet_hours_start),
        int(policies.quiet_hours_end),
    )
    zone = "zone"
    local = f"timezone({zone}, timezone('UTC', $now))"
    hour = f"hour({local})"
    if policies.quiet_hours_start > policies.quiet_hours_end:
        quiet = f"({hour} >= $quiet_start or {hour} < $quiet_end)"
    else:
        quiet = f"({hour} >= $quiet_start and {hour} < $quiet_end)"
    # when quiet hours end next in the customer's zone, in UTC: the ledger stores it, and the
    # deferred-messages sensor runs the sync again once it has passed
    next_end = (
        f"(date_trunc('day', {local}) + to_hours($quiet_end)"
        f" + case when {hour} >= $quiet_end then interval 1 day else interval 0 day end)"
    )
    return quiet, f"case when ({quiet}) then timezone('UTC', timezone({zone}, {next_end})) end"
