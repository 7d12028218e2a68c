"""Point-in-time customer features and labels, read from the warehouse.

Every feature at a cutoff date uses only rows stamped before the end of that day
(`cutoff_end` = cutoff + 1 day, exclusive); labels use only the window after it
(`[cutoff_end, cutoff_end + horizon)`). tests/unit/test_features.py proves that rows
after the cutoff change no feature.

Reads the dbt intermediate models (resolved customer ids, completed purchases,
stitched events) and `marts.dim_customers` for signup dates. One caveat that no
point-in-time filter removes: identity merges are those known on the warehouse's
as-of date, so an account merged later is merged at earlier cutoffs too.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd


@dataclass(frozen=True)
class FeatureSources:
    orders: str = "intermediate.int_orders_resolved"
    items: str = "intermediate.int_order_items_joined"
    events: str = "intermediate.int_events_stitched"
    customers: str = "marts.dim_customers"


WAREHOUSE = FeatureSources()  # the dbt models of this project


FEATURES: tuple[str, ...] = (
    "tenure_days",
    "days_since_first_purchase",
    "days_since_last_purchase",
    "orders_30d",
    "orders_90d",
    "orders_365d",
    "orders_total",
    "revenue_30d",
    "revenue_90d",
    "revenue_365d",
    "revenue_total",
    "average_order_value",
    "mean_gap_days",
    "gap_ratio",
    "order_trend_90d",
    "category_breadth",
    "coupon_share",
    "visits_30d",
    "product_views_30d",
    "cart_adds_30d",
    "checkouts_30d",
    "app_opens_30d",
    "days_since_last_event",
)

# Words for reasons shown to marketers (models_ml.explain).
FEATURE_LABELS = {
    "tenure_days": "days since signup",
    "days_since_first_purchase": "days since first purchase",
    "days_since_last_purchase": "days since last purchase",
    "orders_30d": "orders in the last 30 days",
    "orders_90d": "orders in the last 90 days",
    "orders_365d": "orders in the last year",
    "orders_total": "orders in total",
    "revenue_30d": "revenue in the last 30 days",
    "revenue_90d": "revenue in the last 90 days",
    "revenue_365d": "revenue in the last year",
    "revenue_total": "revenue in total",
    "average_order_value": "average order value",
    "mean_gap_days": "usual days between purchases",
    "gap_ratio": "days since last purchase / usual gap",
    "order_trend_90d": "orders last 90 days minus the 90 days before",
    "category_breadth": "product categories bought",
    "coupon_share": "share of orders with a coupon",
    "visits_30d": "visits in the last 30 days",
    "product_views_30d": "product views in the last 30 days",
    "cart_adds_30d": "cart adds in the last 30 days",
    "checkouts_30d": "checkouts started in the last 30 days",
    "app_opens_30d": "app opens in the last 30 days",
    "days_since_last_event": "days since last site or app activity",
}

_FEATURE_SQL = """
with bounds as (
    select cast($cutoff_end as timestamp) as cutoff_end
),
purchases as (
    select o.customer_id, o.ordered_at, cast(o.ordered_at as date) as order_day, o.amount, o.used_coupon
    from {orders} as o, bounds
    where o.is_purchase and o.ordered_at < bounds.cutoff_end
),
purchase_stats as (
    select
        p.customer_id,
        min(p.ordered_at) as first_purchase_at,
        max(p.ordered_at) as last_purchase_at,
        count(*) as orders_total,
        count(*) filter (where p.ordered_at >= b.cutoff_end - interval 30 day) as orders_30d,
        count(*) filter (where p.ordered_at >= b.cutoff_end - interval 90 day) as orders_90d,
        count(*) filter (where p.ordered_at >= b.cutoff_end - interval 180 day
                           and p.ordered_at < b.cutoff_end - interval 90 day) as orders_prev_90d,
        count(*) filter (where p.ordered_at >= b.cutoff_end - interval 365 day) as orders_365d,
        sum(p.amount) as revenue_total,
        coalesce(sum(p.amount) filter (where p.ordered_at >= b.cutoff_end - interval 30 day), 0) as revenue_30d,
        coalesce(sum(p.amount) filter (where p.ordered_at >= b.cutoff_end - interval 90 day), 0) as revenue_90d,
        coalesce(sum(p.amount) filter (where p.ordered_at >= b.cutoff_end - interval 365 day), 0) as revenue_365d,
        avg(case when p.used_coupon then 1.0 else 0.0 end) as coupon_share
    from purchases as p, bounds as b
    group by p.customer_id
),
purchase_days as (
    select distinct customer_id, order_day from purchases
),
gaps as (
    select customer_id, avg(gap) as mean_gap_days
    from (
        select customer_id, order_day - lag(order_day) over (partition by customer_id order by order_day) as gap
        from purchase_days
    ) as g
    where gap is not null
    group by customer_id
),
breadth as (
    select i.customer_id, count(distinct i.category) as category_breadth
    from {items} as i, bounds
    where i.is_purchase and i.ordered_at < bounds.cutoff_end
    group by i.customer_id
),
activity as (
    select
        e.customer_id,
        count(distinct e.session_id) filter (where e.occurred_at >= b.cutoff_end - interval 30 day) as visits_30d,
        count(*) filter (where e.event_type = 'product_view'
                           and e.occurred_at >= b.cutoff_end - interval 30 day) as product_views_30d,
        count(*) filter (where e.event_type = 'add_to_cart'
                           and e.occurred_at >= b.cutoff_end - interval 30 day) as cart_adds_30d,
        count(*) filter (where e.event_type = 'checkout_started'
                           and e.occurred_at >= b.cutoff_end - interval 30 day) as checkouts_30d,
        count(*) filter (where e.event_type = 'app_open'
                           and e.occurred_at >= b.cutoff_end - interval 30 day) as app_opens_30d,
        max(e.occurred_at) as last_event_at
    from {events} as e, bounds as b
    where e.customer_id is not null
        and e.occurred_at < b.cutoff_end
        and e.occurred_at >= b.cutoff_end - interval 365 day
    group by e.customer_id
),
population as (
    select c.customer_id, coalesce(c.signed_up_at, ps.first_purchase_at) as known_since
    from {customers} as c
    left join purchase_stats as ps on c.customer_id = ps.customer_id
    where coalesce(c.signed_up_at, ps.first_purchase_at) < (select cutoff_end from bounds)
        or ($include_undated and coalesce(c.signed_up_at, ps.first_purchase_at) is null)
)
select
    pop.customer_id,
    date_diff('day', pop.known_since, b.cutoff_end) as tenure_days,
    date_diff('day', ps.first_purchase_at, b.cutoff_end) as days_since_first_purchase,
    date_diff('day', ps.last_purchase_at, b.cutoff_end) as days_since_last_purchase,
    coalesce(ps.orders_30d, 0) as orders_30d,
    coalesce(ps.orders_90d, 0) as orders_90d,
    coalesce(ps.orders_365d, 0) as orders_365d,
    coalesce(ps.orders_total, 0) as orders_total,
    coalesce(ps.revenue_30d, 0) as revenue_30d,
    coalesce(ps.revenue_90d, 0) as revenue_90d,
    coalesce(ps.revenue_365d, 0) as revenue_365d,
    coalesce(ps.revenue_total, 0) as revenue_total,
    ps.revenue_total / ps.orders_total as average_order_value,
    g.mean_gap_days,
    date_diff('day', ps.last_purchase_at, b.cutoff_end) / nullif(g.mean_gap_days, 0) as gap_ratio,
    coalesce(ps.orders_90d, 0) - coalesce(ps.orders_prev_90d, 0) as order_trend_90d,
    coalesce(br.category_breadth, 0) as category_breadth,
    ps.coupon_share,
    coalesce(a.visits_30d, 0) as visits_30d,
    coalesce(a.product_views_30d, 0) as product_views_30d,
    coalesce(a.cart_adds_30d, 0) as cart_adds_30d,
    coalesce(a.checkouts_30d, 0) as checkouts_30d,
    coalesce(a.app_opens_30d, 0) as app_opens_30d,
    date_diff('day', a.last_event_at, b.cutoff_end) as days_since_last_event
from population as pop
cross join bounds as b
left join purchase_stats as ps on pop.customer_id = ps.customer_id
left join gaps as g on pop.customer_id = g.customer_id
left join breadth as br on pop.customer_id = br.customer_id
left join activity as a on pop.customer_id = a.customer_id
order by pop.customer_id
"""

_LABEL_SQL = """
select customer_id, count(*) as future_purchases, sum(amount) as future_revenue
from {orders}
where is_purchase
    and ordered_at >= cast($cutoff_end as timestamp)
    and ordered_at < cast($cutoff_end as timestamp) + to_days(cast($horizon as integer))
group by customer_id
"""


def cutoff_end(cutoff: dt.date) -> dt.datetime:
    """The exclusive end of the cutoff day: everything before it is known at the cutoff."""
    return dt.datetime.combine(cutoff + dt.timedelta(days=1), dt.time())


def build_features(
    con: duckdb.DuckDBPyConnection,
    cutoff: dt.date,
    sources: FeatureSources = WAREHOUSE,
    include_undated: bool = False,
) -> pd.DataFrame:
    """One row per customer known at the cutoff, indexed by customer_id, columns FEATURES (float).

    Customers with neither a signup date nor a purchase cannot be placed in time; they are left out of
    training snapshots and kept when scoring on the as-of date (`include_undated`), where every customer
    in dim_customers exists by definition."""
    sql = _FEATURE_SQL.format(
        orders=sources.orders, items=sources.items, events=sources.events, customers=sources.customers
    )
    params = {"cutoff_end": cutoff_end(cutoff), "include_undated": include_undated}
    df = con.execute(sql, params).df().set_index("customer_id")
    return df[list(FEATURES)].astype("float64")


def build_labels(
    con: duckdb.DuckDBPyConnection,
    cutoff: dt.date,
    horizon_days: int,
    sources: FeatureSources = WAREHOUSE,
) -> pd.DataFrame:
    """Purchases and revenue per customer in the `horizon_days` after the cutoff day (only buyers appear)."""
    if horizon_days <= 0:
        raise ValueError(f"horizon_days must be positive, got {horizon_days}")
    df = con.execute(
        _LABEL_SQL.format(orders=sources.orders),
        {"cutoff_end": cutoff_end(cutoff), "horizon": int(horizon_days)},
    ).df()
    return df.set_index("customer_id").astype("float64")


def data_end(con: duckdb.DuckDBPyConnection, sources: FeatureSources = WAREHOUSE) -> dt.date | None:
    """The last day with purchases in the warehouse (labels cannot reach past it); None without any."""
    return con.execute(
        f"select max(cast(ordered_at as date)) from {sources.orders} where is_purchase"
    ).fetchone()[0]


def usable_features(x: pd.DataFrame) -> tuple[list[str], dict[str, str]]:
    """The columns a model can learn from, and why each other one is left out.

    A column missing for every row ("empty for every customer": an orders-only landing zone has no
    events, so `days_since_last_event` is empty) or holding one value for every row ("0 for every
    customer") says nothing about the outcome; an all-missing column also breaks the gradient
    booster's binning. A column that is present for some rows and missing for others is kept: that
    it is missing is information."""
    kept: list[str] = []
    dropped: dict[str, str] = {}
    for column in x.columns:
        values = x[column]
        if values.isna().all():
            dropped[column] = "empty for every customer"
        elif values.nunique(dropna=False) == 1:
            dropped[column] = f"{float(values.iloc[0]):g} for every customer"
        else:
            kept.append(column)
    return kept, dropped


def is_active(features: pd.DataFrame, window_days: int) -> np.ndarray:
    """Buyers whose last purchase falls within `window_days` before the cutoff."""
    recency = features["days_since_last_purchase"].to_numpy()
    return np.nan_to_num(recency, nan=np.inf) <= window_days
