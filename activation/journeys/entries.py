"""New entries of a journey at a tick: from its trigger, through the re-entry rule and the exclusion,
with the holdout drawn; one transaction for the entries, their first transition and (audience and
condition triggers) the members seen.

Triggers and the candidates they give (customer, trigger id, entered at):

    event      events of the type(s) passing the filter in [clock - lookback, clock): the event's
               id and time. An event arriving late (within the lookback) still starts an entry;
               the same event never starts two (the entry id is a hash of journey, customer and
               trigger id, and an existing id is never entered again).
    date       dim_customers.<attribute> + offset_days in [clock - lookback, clock); for the
               attribute `birthday`, this year's birthday (day and month of birth_date) + offset_days
    audience   members of the audience model who were not members at the previous tick; on the
    condition  journey's first tick every current member enters. Entered at the tick's clock.

Then, per customer, the earliest candidate; not while the customer has an entry of the journey in
flight (any version); re_entry never: not after any earlier entry; {after_days: N}: not within N
days of the last one; not when `exclude` holds (at the entry time). The holdout: a stable hash of
(journey, customer) below `holdout` (activation.policies.stable_unit with salt `journey|<name>`):
the entry is recorded and exits `holdout` at once, and its conversion is measured like the others.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from activation.conditions import CompileContext, compile_condition
from activation.journeys.parse import BIRTH_DATE_COLUMN, BIRTHDAY
from activation.journeys.spec import END, AudienceTrigger, ConditionTrigger, DateTrigger, EventTrigger
from activation.journeys.sql import Sql
from activation.journeys.store import erased_customers_sql
from activation.warehouse import execute, quote_identifier, quote_relation

if TYPE_CHECKING:
    from activation.journeys.tick import JourneyTick


def enter_new(t: JourneyTick) -> tuple[int, int]:
    """(entered, held out) by this tick."""
    j, con, s = t.journey, t.con, t.s
    members = _candidates(t)
    con.execute(
        """create or replace temp table _j_first as
           select customer_id, arg_min(trigger_id, entered_at) as trigger_id, min(entered_at) as entered_at
           from _j_cand where customer_id is not null group by customer_id"""
    )
    if j.entry.exclude is not None:
        q = Sql()
        cond = q.cond(t.compiled(j.entry.exclude))
        con.execute(f"delete from _j_first as c where {cond}", q.params)
    # The same trigger always gives the same entry id and entry time, so an id entered before is
    # found among the entries at or after the earliest candidate's time (a range the history's
    # zone maps prune); the entry in flight is a live one; re-entry rules read every entry.
    (floor,) = con.execute("select min(entered_at) from _j_first").fetchone()
    rules = [
        f"not exists (select 1 from {s}.entries_live as x where x.entry_id = n.entry_id)",
        f"not exists (select 1 from {s}.entries_history as x where x.entry_id = n.entry_id "
        "and x.entered_at >= $floor)",
        f"not exists (select 1 from {s}.entries_live as x where x.journey = $journey "
        "and x.customer_id = n.customer_id and x.exited_at is null)",
    ]
    erased = erased_customers_sql(con)
    if erased is not None:  # an erased customer never enters again
        rules.append(f"n.customer_id not in ({erased})")
    if j.entry.re_entry == "never":
        rules.append(
            f"not exists (select 1 from {s}.entries as x where x.journey = $journey and x.customer_id = n.customer_id)"
        )
    elif j.entry.re_entry == "after":
        rules.append(
            f"not exists (select 1 from {s}.entries as x where x.journey = $journey and x.customer_id = n.customer_id "
            "and x.entered_at > n.entered_at - to_days($after) and x.entered_at > $floor - to_days($after))"
        )
    values = {
        "journey": j.name,
        "salt": f"journey|{j.name}",
        "holdout": float(j.entry.holdout),
        "after": int(j.entry.re_entry_after_days or 0),
        "floor": floor or t.clock,
    }
    execute(
        con,
        f"""create or replace temp table _j_new as
            select * from (
                select substr(sha256($journey || '|' || f.customer_id || '|' || f.trigger_id), 1, 32) as entry_id,
                       f.customer_id, f.trigger_id, f.entered_at,
                       (('0x' || substr(md5($salt || '|' || f.customer_id), 1, 8))::ubigint / 4294967296.0)
                           < $holdout as holdout
                from _j_first as f) as n
            where {" and ".join(rules)}""",
        values,
    )
    goal_days = j.goal.within_days if j.goal is not None else None
    also = [
        (
            f"""insert into {s}.entries_live (entry_id, journey, version, customer_id, trigger_id, entered_at, holdout,
                                         goal_until, tick_id)
                select entry_id, ?, ?, customer_id, trigger_id, entered_at, holdout,
                       case when ? is null then null else entered_at + to_days(cast(? as integer)) end, ?
                from _j_new""",
            [j.name, j.version, goal_days, goal_days, t.tick_id],
        )
    ]
    if members:
        also += [
            (f"delete from {s}.members where journey = ?", [j.name]),
            (f"insert into {s}.members select ?, customer_id from _j_members", [j.name]),
        ]
    t.move(
        j,
        """select entry_id, case when holdout then ? else ? end as to_node,
                  case when holdout then 'exited' else 'entered' end as outcome,
                  case when holdout then 'holdout' end as reason, cast(null as varchar) as arm,
                  case when holdout then 'holdout' end as exit_reason
           from _j_new""",
        [END, j.first],
        also=tuple(also),
    )
    entered, held = con.execute("select count(*), count(*) filter (where holdout) from _j_new").fetchone()
    return int(entered), int(held)


def _candidates(t: JourneyTick) -> bool:
    """_j_cand (customer_id, trigger_id, entered_at) from the trigger; True when the trigger keeps a
    member set (_j_members, written with the entries)."""
    trigger, con, clock = t.journey.entry.trigger, t.con, t.clock
    since = clock - t.journey.entry.lookback
    q = Sql()
    if isinstance(trigger, EventTrigger):
        events = t.catalog.relations["events"]
        # the f-string binds in text order
        con.execute(
            f"""create or replace temp table _j_cand as
                select e.customer_id, 'event:' || cast(e.event_id as varchar) as trigger_id,
                       e.occurred_at as entered_at
                from {quote_relation(f"{events.schema}.{events.table}")} as e
                where e.occurred_at >= {q.bind(since)} and e.occurred_at < {q.bind(clock)}
                  and e.customer_id is not null and {q.cond(t.event_filter(trigger.event, "e"))}""",
            q.params,
        )
        return False
    if isinstance(trigger, DateTrigger) and trigger.attribute == BIRTHDAY:
        _birthdays(t, trigger, since)
        return False
    if isinstance(trigger, DateTrigger):
        column = quote_identifier(trigger.attribute)
        con.execute(
            f"""create or replace temp table _j_cand as
                select customer_id, 'date:' || strftime(moment, '%Y-%m-%dT%H:%M:%S') as trigger_id,
                       moment as entered_at
                from (select c.customer_id, cast(c.{column} as timestamp) + to_days(cast(? as integer)) as moment
                      from {quote_relation(t.customers)} as c)
                where moment >= ? and moment < ?""",
            [trigger.offset_days, since, clock],
        )
        return False
    if isinstance(trigger, AudienceTrigger):
        rel = t.catalog.audiences[trigger.audience]
        con.execute(
            f"create or replace temp table _j_members as select distinct customer_id from "
            f"{quote_relation(f'{rel.schema}.{rel.table}')} where customer_id is not null"
        )
    else:
        assert isinstance(trigger, ConditionTrigger)
        sql, params = compile_condition(
            trigger.condition, t.catalog, CompileContext(target="duckdb", now=clock)
        )
        con.execute(
            f"create or replace temp table _j_members as select c.customer_id from {quote_relation(t.customers)} as c "
            f"where {sql}",
            params,
        )
    con.execute(
        f"""create or replace temp table _j_cand as
            select m.customer_id, ? as trigger_id, cast(? as timestamp) as entered_at from _j_members as m
            where m.customer_id not in (select customer_id from {t.s}.members where journey = ?)""",
        [f"joined:{clock.isoformat(timespec='seconds')}", clock, t.journey.name],
    )
    return True


def _birthdays(t: JourneyTick, trigger: DateTrigger, since: dt.datetime) -> None:
    """_j_cand for `date: {attribute: birthday}`: each customer's birthday (day and month of
    dim_customers.birth_date; 29 February is the 28th in other years) plus offset_days, at midnight
    UTC, in [since, clock); the trigger id names the day, so one entry per customer and year."""
    reach = 1 + abs(trigger.offset_days) // 365 + 1  # years either side the offset can move a birthday
    years = list(range(since.year - reach, t.clock.year + reach + 1))
    con = t.con
    con.execute(
        f"""create or replace temp table _j_cand as
            select customer_id, 'birthday:' || strftime(moment, '%Y-%m-%d') as trigger_id, moment as entered_at
            from (
                select c.customer_id,
                       cast(case when month(c.b) = 2 and day(c.b) = 29
                                      and not ((y.y % 4 = 0 and y.y % 100 <> 0) or y.y % 400 = 0)
                                 then make_date(y.y, 2, 28)
                                 else make_date(y.y, month(c.b), day(c.b)) end as timestamp)
                           + to_days(cast(? as integer)) as moment
                from (select customer_id, cast({quote_identifier(BIRTH_DATE_COLUMN)} as date) as b
                      from {quote_relation(t.customers)} where {quote_identifier(BIRTH_DATE_COLUMN)} is not null) as c
                cross join (select unnest(cast(? as integer[])) as y) as y)
            where moment >= ? and moment < ?""",
        [trigger.offset_days, years, since, t.clock],
    )
