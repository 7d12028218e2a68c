-- The tags that do not read the ML scores (never wait for or depend on scoring).
-- Generated from dbt_project/tags.yml: do not edit. Change the rules there, then run
-- `tideline tags build` (make test fails while this file is stale).
with

-- vip: Top spenders
vip__matched as (
    -- compiled conditions are one line each (docs/audiences.md, How it compiles)
    -- noqa: disable=AL01,LT14
    select
        c.customer_id,
        cast({{ as_of_date() }} as timestamp) as tagged_at,
        {{ number_text('c.revenue', 2) }} as reason_1,
        {{ number_text('100 * ' ~ var('tag_vip_top_share'), 1) }} as reason_3
    from {{ ref('dim_customers') }} as c
    where exists (select 1 from (select v2.customer_id, percent_rank() over (order by v2.revenue desc) as share_rank from {{ ref('dim_customers') }} v2 where v2.revenue is not null and exists (select 1 from {{ ref('dim_customers') }} r3 where r3.customer_id = v2.customer_id and r3.is_buyer = true)) r1 where r1.customer_id = c.customer_id and r1.share_rank < {{ var('tag_vip_top_share') }})
    -- noqa: enable=all
),

vip as (
    select
        customer_id,
        'vip' as tag,
        tagged_at,
        'revenue ' || reason_1 || ' is in the top ' || reason_3 || '% of buyers' as reason
    from vip__matched
),

-- high_potential: Young customers with large baskets
high_potential__matched as (
    -- compiled conditions are one line each (docs/audiences.md, How it compiles)
    -- noqa: disable=AL01,LT14
    select
        c.customer_id,
        cast({{ as_of_date() }} as timestamp) as tagged_at,
        cast(c.order_count as {{ dbt.type_string() }}) as reason_0,
        cast(cast(c.first_order_at as date) as {{ dbt.type_string() }}) as reason_2,
        {{ number_text('c.average_order_value', 2) }} as reason_4,
        {{ number_text('100 * ' ~ var('tag_high_potential_top_aov_share'), 1) }} as reason_6
    from {{ ref('dim_customers') }} as c
    where (exists (select 1 from {{ ref('dim_customers') }} r1 where r1.customer_id = c.customer_id and r1.order_count <= {{ var('tag_high_potential_max_orders') }}) and exists (select 1 from {{ ref('dim_customers') }} r2 where r2.customer_id = c.customer_id and r2.first_order_at >= cast({{ dbt.dateadd('day', -(var('tag_high_potential_recent_days') | int), as_of_date()) }} as timestamp) and r2.first_order_at < {{ as_of_cutoff() }}) and exists (select 1 from (select v4.customer_id, percent_rank() over (order by v4.average_order_value desc) as share_rank from {{ ref('dim_customers') }} v4 where v4.average_order_value is not null and exists (select 1 from {{ ref('dim_customers') }} r5 where r5.customer_id = v4.customer_id and r5.is_buyer = true)) r3 where r3.customer_id = c.customer_id and r3.share_rank < {{ var('tag_high_potential_top_aov_share') }}))
    -- noqa: enable=all
),

high_potential as (
    select
        customer_id,
        'high_potential' as tag,
        tagged_at,
        reason_0 || ' order(s) since ' || reason_2 || ', average order value ' || reason_4 || ' in the top ' || reason_6 || '%' as reason
    from high_potential__matched
),

-- new_signup: Recently signed up
new_signup__matched as (
    -- compiled conditions are one line each (docs/audiences.md, How it compiles)
    -- noqa: disable=AL01,LT14
    select
        c.customer_id,
        coalesce(c.signed_up_at, cast({{ as_of_date() }} as timestamp)) as tagged_at
    from {{ ref('dim_customers') }} as c
    where exists (select 1 from {{ ref('dim_customers') }} r1 where r1.customer_id = c.customer_id and r1.signed_up_at is not null)
    -- noqa: enable=all
),

new_signup as (
    select
        customer_id,
        'new_signup' as tag,
        tagged_at,
        'signed up ' || cast({{ days_between('tagged_at', as_of_date()) }} as {{ dbt.type_string() }}) || ' day(s) ago' as reason
    from new_signup__matched
    where {{ days_between('tagged_at', as_of_date()) }} <= {{ var('tag_new_signup_days') }}
),

-- dormant: No purchase for a long time
dormant__matched as (
    -- compiled conditions are one line each (docs/audiences.md, How it compiles)
    -- noqa: disable=AL01,LT14
    select
        c.customer_id,
        coalesce(cast(lc.stage_entered_on as timestamp), cast({{ as_of_date() }} as timestamp)) as tagged_at,
        cast(lc.days_since_last_purchase as {{ dbt.type_string() }}) as reason_1
    from {{ ref('dim_customers') }} as c
    left join {{ ref('customer_lifecycle') }} as lc on c.customer_id = lc.customer_id
    where exists (select 1 from {{ ref('customer_lifecycle') }} r1 where r1.customer_id = c.customer_id and r1.lifecycle_stage = 'churned')
    -- noqa: enable=all
),

dormant as (
    select
        customer_id,
        'dormant' as tag,
        tagged_at,
        'no purchase for ' || reason_1 || ' days' as reason
    from dormant__matched
),

-- at_risk: Slipping away
at_risk__matched as (
    -- compiled conditions are one line each (docs/audiences.md, How it compiles)
    -- noqa: disable=AL01,LT14
    select
        c.customer_id,
        coalesce(cast(lc.stage_entered_on as timestamp), cast({{ as_of_date() }} as timestamp)) as tagged_at,
        cast(lc.days_since_last_purchase as {{ dbt.type_string() }}) as reason_1
    from {{ ref('dim_customers') }} as c
    left join {{ ref('customer_lifecycle') }} as lc on c.customer_id = lc.customer_id
    where exists (select 1 from {{ ref('customer_lifecycle') }} r1 where r1.customer_id = c.customer_id and r1.lifecycle_stage = 'at_risk')
    -- noqa: enable=all
),

at_risk as (
    select
        customer_id,
        'at_risk' as tag,
        tagged_at,
        'no purchase for ' || reason_1 || ' days' as reason
    from at_risk__matched
),

-- price_sensitive: Buys mostly with coupons
price_sensitive__matched as (
    -- compiled conditions are one line each (docs/audiences.md, How it compiles)
    -- noqa: disable=AL01,LT14
    select
        c.customer_id,
        cast({{ as_of_date() }} as timestamp) as tagged_at,
        cast(c.coupon_order_count as {{ dbt.type_string() }}) as reason_0,
        cast(c.order_count as {{ dbt.type_string() }}) as reason_2
    from {{ ref('dim_customers') }} as c
    where (exists (select 1 from {{ ref('dim_customers') }} r1 where r1.customer_id = c.customer_id and r1.order_count >= {{ var('tag_price_sensitive_min_orders') }}) and coalesce((select cast(sum(case when coalesce(o2.used_coupon = true, false) then 1 else 0 end) as {{ type_double() }}) / nullif(count(*), 0) from {{ ref('int_orders_resolved') }} o2 where o2.customer_id = c.customer_id and o2.is_purchase and o2.ordered_at < {{ as_of_cutoff() }}) >= {{ var('tag_price_sensitive_coupon_share') }}, false))
    -- noqa: enable=all
),

price_sensitive as (
    select
        customer_id,
        'price_sensitive' as tag,
        tagged_at,
        reason_0 || ' of ' || reason_2 || ' orders with a coupon' as reason
    from price_sensitive__matched
),

-- cart_abandoner: Left a cart or checkout
cart_abandoner__matched as (
    -- compiled conditions are one line each (docs/audiences.md, How it compiles)
    -- noqa: disable=AL01,LT14
    select
        c.customer_id,
        coalesce((select max(e1.occurred_at) from {{ ref('int_events_stitched') }} e1 where e1.customer_id = c.customer_id and e1.event_type in ('add_to_cart', 'checkout_started') and e1.occurred_at >= cast({{ dbt.dateadd('day', -(var('tag_cart_abandon_days') | int), as_of_cutoff()) }} as timestamp) and e1.occurred_at < {{ as_of_cutoff() }}), cast({{ as_of_date() }} as timestamp)) as tagged_at
    from {{ ref('dim_customers') }} as c
    where exists (select 1 from {{ ref('int_events_stitched') }} e1 where e1.customer_id = c.customer_id and e1.event_type in ('add_to_cart', 'checkout_started') and e1.occurred_at >= cast({{ dbt.dateadd('day', -(var('tag_cart_abandon_days') | int), as_of_cutoff()) }} as timestamp) and e1.occurred_at < {{ as_of_cutoff() }} and not exists (select 1 from {{ ref('int_orders_resolved') }} o2 where o2.customer_id = e1.customer_id and o2.ordered_at >= e1.occurred_at and o2.ordered_at < {{ as_of_cutoff() }}))
    -- noqa: enable=all
),

cart_abandoner as (
    select
        customer_id,
        'cart_abandoner' as tag,
        tagged_at,
        'cart activity on ' || cast(cast(tagged_at as date) as {{ dbt.type_string() }}) || ' and no order since' as reason
    from cart_abandoner__matched
),

-- one_time_buyer: Bought exactly once
one_time_buyer__matched as (
    -- compiled conditions are one line each (docs/audiences.md, How it compiles)
    -- noqa: disable=AL01,LT14
    select
        c.customer_id,
        coalesce(c.first_order_at, cast({{ as_of_date() }} as timestamp)) as tagged_at,
        cast(cast(c.first_order_at as date) as {{ dbt.type_string() }}) as reason_1
    from {{ ref('dim_customers') }} as c
    where exists (select 1 from {{ ref('dim_customers') }} r1 where r1.customer_id = c.customer_id and r1.order_count = 1)
    -- noqa: enable=all
),

one_time_buyer as (
    select
        customer_id,
        'one_time_buyer' as tag,
        tagged_at,
        'one purchase, on ' || reason_1 as reason
    from one_time_buyer__matched
),

final as (
    select customer_id, tag, tagged_at, reason from vip
    union all
    select customer_id, tag, tagged_at, reason from high_potential
    union all
    select customer_id, tag, tagged_at, reason from new_signup
    union all
    select customer_id, tag, tagged_at, reason from dormant
    union all
    select customer_id, tag, tagged_at, reason from at_risk
    union all
    select customer_id, tag, tagged_at, reason from price_sensitive
    union all
    select customer_id, tag, tagged_at, reason from cart_abandoner
    union all
    select customer_id, tag, tagged_at, reason from one_time_buyer
)

select customer_id, tag, tagged_at, reason, {{ as_of_date() }} as as_of_date
from final
