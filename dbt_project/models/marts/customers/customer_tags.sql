-- Long table of tags: one row per customer and tag that applies on the as-of date.
-- tagged_at is when the condition started where the data tells (signup, stage
-- entry, last cart activity, first order), else the as-of date.
{%- set as_of_ts = 'cast(' ~ as_of_date() ~ ' as timestamp)' %}
with customers as (
    select * from {{ ref('dim_customers') }}
),

buyers as (
    select
        customer_id,
        order_count,
        revenue,
        average_order_value,
        coupon_order_count,
        first_order_at,
        percent_rank() over (order by revenue desc) as revenue_rank_share,
        percent_rank() over (order by average_order_value desc) as aov_rank_share
    from customers
    where is_buyer
),

lifecycle as (
    select * from {{ ref('customer_lifecycle') }}
),

cart_activity as (
    select customer_id, max(occurred_at) as last_cart_at
    from {{ ref('int_events_stitched') }}
    where
        customer_id is not null
        and event_type in ('add_to_cart', 'checkout_started')
        and occurred_at >= cast({{ dbt.dateadd('day', -(var('tag_cart_abandon_days') | int), as_of_cutoff()) }} as timestamp)
    group by customer_id
),

vip as (
    select
        customer_id,
        'vip' as tag,
        {{ as_of_ts }} as tagged_at,
        'revenue ' || cast(round(revenue, 2) as varchar) || ' is in the top '
        || cast(round(100 * {{ var('tag_vip_top_share') }}, 1) as varchar) || '% of buyers' as reason
    from buyers
    where revenue_rank_share < {{ var('tag_vip_top_share') }}
),

high_potential as (
    select
        customer_id,
        'high_potential' as tag,
        {{ as_of_ts }} as tagged_at,
        cast(order_count as varchar) || ' order(s) since ' || cast(cast(first_order_at as date) as varchar)
        || ', average order value ' || cast(round(average_order_value, 2) as varchar)
        || ' in the top ' || cast(round(100 * {{ var('tag_high_potential_top_aov_share') }}, 1) as varchar)
        || '%' as reason
    from buyers
    where
        order_count <= {{ var('tag_high_potential_max_orders') }}
        and {{ days_between('first_order_at', as_of_date()) }} <= {{ var('tag_high_potential_recent_days') }}
        and aov_rank_share < {{ var('tag_high_potential_top_aov_share') }}
),

new_signup as (
    select
        customer_id,
        'new_signup' as tag,
        signed_up_at as tagged_at,
        'signed up ' || cast({{ days_between('signed_up_at', as_of_date()) }} as varchar) || ' day(s) ago' as reason
    from customers
    where
        signed_up_at is not null
        and {{ days_between('signed_up_at', as_of_date()) }} <= {{ var('tag_new_signup_days') }}
),

dormant as (
    select
        customer_id,
        'dormant' as tag,
        cast(stage_entered_on as timestamp) as tagged_at,
        'no purchase for ' || cast(days_since_last_purchase as varchar) || ' days' as reason
    from lifecycle
    where lifecycle_stage = 'churned'
),

at_risk as (
    select
        customer_id,
        'at_risk' as tag,
        cast(stage_entered_on as timestamp) as tagged_at,
        'no purchase for ' || cast(days_since_last_purchase as varchar) || ' days' as reason
    from lifecycle
    where lifecycle_stage = 'at_risk'
),

price_sensitive as (
    select
        customer_id,
        'price_sensitive' as tag,
        {{ as_of_ts }} as tagged_at,
        cast(coupon_order_count as varchar) || ' of ' || cast(order_count as varchar) || ' orders with a coupon'
            as reason
    from buyers
    where
        order_count >= {{ var('tag_price_sensitive_min_orders') }}
        and 1.0 * coupon_order_count / order_count >= {{ var('tag_price_sensitive_coupon_share') }}
),

cart_abandoner as (
    select
        cart_activity.customer_id,
        'cart_abandoner' as tag,
        cart_activity.last_cart_at as tagged_at,
        'cart activity on ' || cast(cast(cart_activity.last_cart_at as date) as varchar) || ' and no order since'
            as reason
    from cart_activity
    inner join customers on cart_activity.customer_id = customers.customer_id
    where not exists (
        select 1
        from {{ ref('int_orders_resolved') }} as orders
        where
            orders.customer_id = cart_activity.customer_id
            and orders.ordered_at >= cart_activity.last_cart_at
    )
),

one_time_buyer as (
    select
        customer_id,
        'one_time_buyer' as tag,
        first_order_at as tagged_at,
        'one purchase, on ' || cast(cast(first_order_at as date) as varchar) as reason
    from buyers
    where order_count = 1
),

scores as (
    select
        customer_id,
        churn_probability,
        predicted_clv,
        scored_at,
        percent_rank() over (order by predicted_clv desc) as clv_rank_share
    from {{ source('ml', 'customer_scores') }}
    where predicted_clv is not null and as_of_date = {{ as_of_date() }}
),

high_value_at_risk as (
    select
        scores.customer_id,
        'high_value_at_risk' as tag,
        scores.scored_at as tagged_at,
        'churn risk ' || cast(round(100 * scores.churn_probability) as varchar) || '%, predicted value '
        || cast(round(scores.predicted_clv, 2) as varchar) || ' in the top '
        || cast(round(100 * {{ var('tag_high_value_at_risk_top_clv_share') }}) as varchar) || '%' as reason
    from scores
    inner join customers on scores.customer_id = customers.customer_id
    where
        scores.churn_probability >= {{ var('tag_high_value_at_risk_churn') }}
        and scores.clv_rank_share < {{ var('tag_high_value_at_risk_top_clv_share') }}
),

final as (
    select * from vip
    union all
    select * from high_potential
    union all
    select * from new_signup
    union all
    select * from dormant
    union all
    select * from at_risk
    union all
    select * from price_sensitive
    union all
    select * from cart_abandoner
    union all
    select * from one_time_buyer
    union all
    select * from high_value_at_risk
)

select customer_id, tag, tagged_at, reason, {{ as_of_date() }} as as_of_date
from final
