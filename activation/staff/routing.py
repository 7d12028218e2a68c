"""Who a notification goes to (docs/leads.md, "Staff notifications"), in SQL over the contract's
marts: marts.customer_owners (the links, owner_rank 1 = the first linked) and marts.dim_staff
(manager, handle, time zone, active).

Routes, among the employees linked to the customer who are active (customer_owners.staff_is_active
and dim_staff.is_active):

    owner        the current owner: the most recently linked (the highest owner_rank)
    first_owner  the earliest linked (the lowest owner_rank): who added them
    all_owners   every one of them
    manager      the current owner's manager (dim_staff.manager_id)
    team         the team channel

A routed person who cannot be reached falls back to the team channel, and the reason says why in
words: nobody is linked, nobody linked is active, the owner has no manager, the employee is
inactive, has no usable handle (notify_kind null), or their kind of handle has no destination
configured. A route of `team` is not a fallback. For all_owners, the owners who can be reached get
it and one team notification carries the reasons of the others.

`route(con, rules, staff, now)` turns _staff_candidates into `_staff_routed`, one row per
notification (rule, customer, event key, recipient).
"""

from __future__ import annotations

import duckdb

from activation.staff.config import StaffConfig
from activation.staff.rules import CANDIDATES, OWNERS, STAFF
from activation.warehouse import execute, table_exists

ROUTED = "_staff_routed"


def rule_routes(con: duckdb.DuckDBPyConnection, staff: StaffConfig) -> None:
    """_staff_rule_routes: each enabled rule's route, destination override and digest flag."""
    con.execute(
        "create or replace temp table _staff_rule_routes (rule varchar, route varchar, override varchar, digest boolean)"
    )
    rows = [(r.name, r.route, r.destination, r.digest) for r in staff.enabled_rules]
    if rows:
        con.executemany("insert into _staff_rule_routes values (?, ?, ?, ?)", rows)


def route(con: duckdb.DuckDBPyConnection, staff: StaffConfig, candidates: str = CANDIDATES) -> None:
    """_staff_routed from `candidates` (rule, rule_kind, customer_id, event_key, occurred_at,
    message; the rule's route from _staff_rule_routes): one row per notification."""
    have_staff = table_exists(con, "marts", "customer_owners") and table_exists(con, "marts", "dim_staff")
    owners = (
        f"""select o.customer_id, o.staff_id, o.owner_rank
            from {OWNERS} as o join {STAFF} as s on s.staff_id = o.staff_id
            where coalesce(o.staff_is_active, true) and coalesce(s.is_active, true)
              and o.customer_id in (select customer_id from cand)"""
        if have_staff
        else "select cast(null as varchar) as customer_id, cast(null as varchar) as staff_id, 0 as owner_rank where false"
    )
    linked = (
        f"select customer_id, count(*) as n from {OWNERS} where customer_id in (select customer_id from cand) group by 1"
        if have_staff
        else "select cast(null as varchar) as customer_id, 0 as n where false"
    )
    staff_rel = (
        f"select staff_id, manager_id, notify_kind, is_active from {STAFF}"
        if have_staff
        else "select cast(null as varchar) as staff_id, cast(null as varchar) as manager_id, cast(null as varchar) as notify_kind, true as is_active where false"
    )
    values = {
        "team": staff.team_destination,
        "chat": staff.chat_destination,
        "email": staff.email_destination,
        "link_base": staff.link_base_url.rstrip("/"),
        "digest_staff": sorted(staff.digest_staff),
    }
    execute(
        con,
        f"""create or replace temp table {ROUTED} as
        with cand as (
            select c.*, r.route, r.override, r.digest from {candidates} as c join _staff_rule_routes as r on r.rule = c.rule
        ),
        active as (
            select customer_id, staff_id,
                   row_number() over (partition by customer_id order by owner_rank desc, staff_id desc) as newest,
                   row_number() over (partition by customer_id order by owner_rank, staff_id) as oldest
            from ({owners}) as a
        ),
        linked as ({linked}),
        st as ({staff_rel}),
        picked as (
            select c.*, a.staff_id as target,
                   case when a.staff_id is null then
                       case when coalesce(l.n, 0) > 0 then 'no active employee is linked to the customer'
                            else 'no employee is linked to the customer' end end as miss
            from cand as c
            left join active as a on a.customer_id = c.customer_id
                and ((c.route = 'owner' and a.newest = 1) or (c.route = 'first_owner' and a.oldest = 1)
                     or c.route = 'all_owners')
            left join linked as l on l.customer_id = c.customer_id
            where c.route in ('owner', 'first_owner', 'all_owners')
            union all
            select c.*, s.manager_id as target,
                   case when a.staff_id is null then
                            case when coalesce(l.n, 0) > 0 then 'no active employee is linked to the customer'
                                 else 'no employee is linked to the customer' end
                        when s.manager_id is null then 'the owner ' || a.staff_id || ' has no manager' end as miss
            from cand as c
            left join active as a on a.customer_id = c.customer_id and a.newest = 1
            left join st as s on s.staff_id = a.staff_id
            left join linked as l on l.customer_id = c.customer_id
            where c.route = 'manager'
            union all
            select c.*, cast(null as varchar) as target, cast(null as varchar) as miss from cand as c where c.route = 'team'
        ),
        judged as (
            select p.*, t.notify_kind,
                   case when p.target is null then p.miss
                        when t.staff_id is null then 'employee ' || p.target || ' is not in dim_staff'
                        when not coalesce(t.is_active, true) then 'employee ' || p.target || ' is inactive'
                        when p.override is not null then null
                        when t.notify_kind is null then 'employee ' || p.target || ' has no usable handle'
                        when t.notify_kind = 'webhook' and $chat is null then
                            'employee ' || p.target || ' has a chat handle and no chat destination is configured'
                        when t.notify_kind = 'email' and $email is null then
                            'employee ' || p.target || ' has an email handle and no email destination is configured'
                        when t.notify_kind not in ('webhook', 'email') then
                            'employee ' || p.target || ' has a handle of unknown kind'
                   end as unusable
            from picked as p left join st as t on t.staff_id = p.target
        ),
        people as (
            select rule, rule_kind, customer_id, event_key, occurred_at, message, route, target as staff_id,
                   false as fell_back, cast(null as varchar) as fallback_reason,
                   coalesce(override, case notify_kind when 'webhook' then $chat || ':' || target else $email end)
                       as destination,
                   case when override is null then notify_kind else 'webhook' end as handle_kind,
                   override is null and (digest or list_contains(cast($digest_staff as varchar[]), target)) as via_digest
            from judged where unusable is null and target is not null
        ),
        team as (
            select rule, rule_kind, customer_id, event_key, any_value(occurred_at) as occurred_at,
                   any_value(message) as message, route, cast(null as varchar) as staff_id,
                   route <> 'team' as fell_back,
                   string_agg(distinct unusable, '; ' order by unusable) as fallback_reason,
                   coalesce(any_value(override), $team) as destination, 'webhook' as handle_kind,
                   false as via_digest
            from judged where unusable is not null or (route = 'team')
            group by rule, rule_kind, customer_id, event_key, route
        ),
        together as (select * from people union all select * from team)
        select substr(sha256(concat_ws('|', rule, customer_id, event_key,
                                       coalesce('staff:' || staff_id, 'team'))), 1, 32) as notification_id,
               rule, rule_kind, customer_id, event_key, staff_id, coalesce('staff:' || staff_id, 'team') as recipient,
               route, fell_back, fallback_reason, destination, handle_kind,
               message || case when staff_id is not null then '. For ' || staff_id || ' (' || route || ')'
                               when fell_back then '. For the team: ' || fallback_reason
                               else '. For the team' end as message,
               $link_base || '/' || customer_id as link, via_digest, occurred_at
        from together""",
        values,
    )
