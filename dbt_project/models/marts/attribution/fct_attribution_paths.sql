-- The attribution paths: the one place the path rules live (docs/attribution.md). Both
-- fct_attribution (its converting paths) and the Markov asset (every path) read this model.
-- Converting path of a completed order: the customer's touches before it, within the
-- `attribution_lookback_days` before it, and not before the customer's previous completed
-- order (a touch is on one order's path at most; a touch at an order's exact time belongs to
-- the next order). Non-converting path of a customer: the touches no order followed (after
-- the last completed order, or all of them for a customer who never ordered), within
-- `attribution_lookback_days` before the last of them. Touches whose next order is more than
-- the lookback away are on no path. Touches are ordered by time, then touchpoint_id.
{%- set lookback = positive_var('attribution_lookback_days') %}
with orders as (
    select
        order_id,
        customer_id,
        ordered_at,
        amount as order_amount,
        lag(ordered_at) over (partition by customer_id order by ordered_at, order_id) as previous_ordered_at
    from {{ ref('int_orders_resolved') }}
    where is_purchase
),

touches as (
    select touchpoint_id, customer_id, touched_at, channel, campaign, touch_type
    from {{ ref('fct_touchpoints') }}
),

converting as (
    select
        'order:' || orders.order_id as path_id,
        true as is_converting,
        orders.customer_id,
        orders.order_id,
        orders.ordered_at,
        orders.order_amount,
        touches.touchpoint_id,
        touches.touched_at,
        touches.channel,
        touches.campaign,
        touches.touch_type
    from orders
    inner join touches
        on
            orders.customer_id = touches.customer_id
            and orders.ordered_at > touches.touched_at
            and touches.touched_at >= {{ dbt.dateadd('day', -lookback, 'orders.ordered_at') }}
            and (orders.previous_ordered_at is null or orders.previous_ordered_at <= touches.touched_at)
),

last_orders as (
    select customer_id, max(ordered_at) as last_ordered_at
    from orders
    group by customer_id
),

-- touches no completed order came after
unconverted as (
    select
        touches.touchpoint_id,
        touches.customer_id,
        touches.touched_at,
        touches.channel,
        touches.campaign,
        touches.touch_type,
        max(touches.touched_at) over (partition by touches.customer_id) as last_touched_at
    from touches
    left join last_orders on touches.customer_id = last_orders.customer_id
    where last_orders.last_ordered_at is null or touches.touched_at >= last_orders.last_ordered_at
),

non_converting as (
    select
        'customer:' || customer_id as path_id,
        false as is_converting,
        customer_id,
        cast(null as {{ dbt.type_string() }}) as order_id,
        cast(null as {{ dbt.type_timestamp() }}) as ordered_at,
        cast(null as {{ dbt.type_numeric() }}) as order_amount,
        touchpoint_id,
        touched_at,
        channel,
        campaign,
        touch_type
    from unconverted
    where touched_at >= {{ dbt.dateadd('day', -lookback, 'last_touched_at') }}
),

path_touches as (
    select
        path_id, is_converting, customer_id, order_id, ordered_at, order_amount,
        touchpoint_id, touched_at, channel, campaign, touch_type
    from converting
    union all
    select
        path_id, is_converting, customer_id, order_id, ordered_at, order_amount,
        touchpoint_id, touched_at, channel, campaign, touch_type
    from non_converting
),

final as (
    select
        path_id,
        is_converting,
        customer_id,
        order_id,
        ordered_at,
        order_amount,
        touchpoint_id,
        touched_at,
        channel,
        campaign,
        touch_type,
        row_number() over (partition by path_id order by touched_at, touchpoint_id) as touch_position,
        count(*) over (partition by path_id) as path_length
    from path_touches
)

select * from final
