"""What each staff notification rule notifies: one candidate row per (rule, customer, event key),
read from the marts (never recomputed here), in the temp table `_staff_candidates`:

    rule, rule_kind, customer_id, event_key, occurred_at, message

Rules look back `within_days` whole days up to the as-of date (the day itself included), so the
first run on a warehouse with years of history does not notify all of it:

| kind | reads | one event (its key) | message |
|---|---|---|---|
| new_lead_assigned | marts.customer_owners × marts.lead_scores | an owner link of a lead (`<staff_id>@<linked_at>`) | `Lead c_1 was assigned to s_2 on 2026-12-05 (stage nurtured, score 32.5)` |
| lead_mql | marts.lead_scores | the first MQL crossing (`mql_first_on`) | `Customer c_1 reached MQL on 2026-12-05 (score 74: <top reasons>)` |
| churn_risk_high_value | ml.customer_scores | a valuable customer at risk in an ISO week of the as-of date (`2026-W49`) | `Customer c_1 is at high risk of churning (71%) with a predicted 12-month value of 1,234.50 (top 20%)` |
| order_above | intermediate.int_orders_resolved | an order (its order id) | `Customer c_1 ordered 612.40 EUR (order o_9) on 2026-12-06` |
| form_submitted | intermediate.int_events_stitched | an event (its event id) | `Customer c_1 submitted form_submit on 2026-12-06 14:03 (page /webinar)` |

Churn risk is keyed by the ISO week of the as-of date: while the condition holds the owner hears
about it at most once a week, and a new week with the customer still at risk is a new reminder.

Messages hold ids, dates, amounts, scores and rule reasons, never names, emails or phones; a page
is its path only (a query string may carry personal data).
"""

from __future__ import annotations

import datetime as dt

import duckdb

from activation.staff.config import Rule
from activation.warehouse import columns_of, execute, table_exists

LEAD_SCORES = "marts.lead_scores"
OWNERS = "marts.customer_owners"
STAFF = "marts.dim_staff"
SCORES = "ml.customer_scores"
ORDERS = "intermediate.int_orders_resolved"
EVENTS = "intermediate.int_events_stitched"
CANDIDATES = "_staff_candidates"

_COLUMNS = "rule varchar, rule_kind varchar, customer_id varchar, event_key varchar, occurred_at timestamp, message varchar"


def create_candidates(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"create or replace temp table {CANDIDATES} ({_COLUMNS})")


def handled_sql(con: duckdb.DuckDBPyConnection) -> str:
    """The customers already handled (lead_scores.crm_stage not null: sales accepted them, or they
    are an opportunity, a deal or lost), as a subquery; empty before the CRM stages exist."""
    if not table_exists(con, "marts", "lead_scores") or "crm_stage" not in columns_of(con, LEAD_SCORES):
        return "select cast(null as varchar) as customer_id where false"
    return f"select customer_id from {LEAD_SCORES} where crm_stage is not null"


def add_candidates(con: duckdb.DuckDBPyConnection, rule: Rule, as_of: dt.date) -> int:
    """Append the rule's candidates as of `as_of` to _staff_candidates; the number added (0 when
    the tables the rule reads are not built yet)."""
    sql = _SQL[rule.kind](rule)
    needed = _NEEDS[rule.kind]
    if not all(table_exists(con, *relation.split(".")) for relation in needed):
        return 0
    values = {
        "rule": rule.name,
        "kind": rule.kind,
        "window_start": as_of - dt.timedelta(days=rule.within_days - 1),
        "cutoff": as_of + dt.timedelta(days=1),
        "as_of": as_of,
        **{k: v for k, v in rule.params.items() if not isinstance(v, bool)},
    }
    if rule.kind == "churn_risk_high_value":
        year, week, _ = as_of.isocalendar()
        values["week"] = f"{year}-W{week:02d}"
    handled = f"and c.customer_id not in ({handled_sql(con)})" if rule.skip_handled else ""
    before = con.execute(f"select count(*) from {CANDIDATES}").fetchone()[0]
    execute(
        con,
        f"""insert into {CANDIDATES}
            select $rule, $kind, c.customer_id, c.event_key, c.occurred_at, c.message
            from ({sql}) as c where c.customer_id is not null {handled}""",
        values,
    )
    return con.execute(f"select count(*) from {CANDIDATES}").fetchone()[0] - before


def _new_lead_assigned(rule: Rule) -> str:
    return f"""select o.customer_id, o.staff_id || '@' || strftime(o.linked_at, '%Y-%m-%dT%H:%M:%S') as event_key,
                      o.linked_at as occurred_at,
                      'Lead ' || o.customer_id || ' was assigned to ' || o.staff_id || ' on '
                          || strftime(o.linked_at, '%Y-%m-%d') || ' (stage ' || coalesce(l.lead_stage, 'unknown')
                          || ', score ' || coalesce(cast(round(l.total_score, 1) as varchar), '-') || ')' as message
               from {OWNERS} as o join {LEAD_SCORES} as l on l.customer_id = o.customer_id
               where o.linked_at >= $window_start and o.linked_at < $cutoff"""


def _lead_mql(rule: Rule) -> str:
    return f"""select l.customer_id, strftime(l.mql_first_on, '%Y-%m-%d') as event_key,
                      cast(l.mql_first_on as timestamp) as occurred_at,
                      'Customer ' || l.customer_id || ' reached MQL on ' || strftime(l.mql_first_on, '%Y-%m-%d')
                          || ' (score ' || cast(round(l.total_score, 1) as varchar)
                          || coalesce(': ' || nullif(l.top_reasons, ''), '') || ')' as message
               from {LEAD_SCORES} as l
               where l.mql_first_on >= $window_start and l.mql_first_on < $cutoff"""


def _churn_risk(rule: Rule) -> str:
    if "min_predicted_clv" in rule.params:
        valuable, label = (
            "s.predicted_clv >= $min_predicted_clv",
            "'at least ' || format('{:,.2f}', cast($min_predicted_clv as double))",
        )
    else:
        valuable = "s.clv_rank <= $clv_top_share"
        label = "'top ' || cast(round($clv_top_share * 100) as integer) || '%'"
    return f"""with latest as (
                   select customer_id, churn_probability, predicted_clv
                   from {SCORES}
                   where as_of_date = (select max(as_of_date) from {SCORES} where as_of_date <= $as_of)
               ),
               s as (
                   select *, percent_rank() over (order by predicted_clv desc) as clv_rank
                   from latest where predicted_clv is not null
               )
               select s.customer_id, $week as event_key, cast(null as timestamp) as occurred_at,
                      'Customer ' || s.customer_id || ' is at high risk of churning ('
                          || cast(round(s.churn_probability * 100) as integer) || '%) with a predicted 12-month value of '
                          || format('{{:,.2f}}', cast(s.predicted_clv as double)) || ' (' || {label} || ')' as message
               from s
               where s.churn_probability >= $min_churn_probability and {valuable}"""


def _order_above(rule: Rule) -> str:
    completed = "and o.is_purchase" if rule.params.get("completed_only", True) else ""
    return f"""select o.customer_id, o.order_id as event_key, o.ordered_at as occurred_at,
                      'Customer ' || o.customer_id || ' ordered ' || format('{{:,.2f}}', cast(o.amount as double))
                          || coalesce(' ' || o.currency, '') || ' (order ' || o.order_id || ') on '
                          || strftime(o.ordered_at, '%Y-%m-%d') as message
               from {ORDERS} as o
               where o.amount > $amount and o.ordered_at >= $window_start and o.ordered_at < $cutoff {completed}"""


def _form_submitted(rule: Rule) -> str:
    url = "and strpos(coalesce(e.url, ''), $url_contains) > 0" if "url_contains" in rule.params else ""
    path = "nullif(regexp_extract(coalesce(e.url, ''), '^(?:[a-z]+://[^/?#]*)?([^?#]*)', 1), '')"
    return f"""select e.customer_id, e.event_id as event_key, e.occurred_at,
                      'Customer ' || e.customer_id || ' submitted ' || e.event_type || ' on '
                          || strftime(e.occurred_at, '%Y-%m-%d %H:%M') || coalesce(' (page ' || {path} || ')', '') as message
               from {EVENTS} as e
               where e.event_type = $event_type and e.occurred_at >= $window_start and e.occurred_at < $cutoff {url}"""


_SQL = {
    "new_lead_assigned": _new_lead_assigned,
    "lead_mql": _lead_mql,
    "churn_risk_high_value": _churn_risk,
    "order_above": _order_above,
    "form_submitted": _form_submitted,
}
_NEEDS = {
    "new_lead_assigned": (OWNERS, LEAD_SCORES),
    "lead_mql": (LEAD_SCORES,),
    "churn_risk_high_value": (SCORES,),
    "order_above": (ORDERS,),
    "form_submitted": (EVENTS,),
}
