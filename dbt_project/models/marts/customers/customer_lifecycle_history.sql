{{ check_lifecycle_vars() }}
-- Stage history: one row per customer per stage spell, up to the as-of date.
-- Stages follow from purchase days alone (see docs/lifecycle.md):
--   prospect    known (signed up) but no purchase yet
--   new         first purchase, for lifecycle_new_days
--   active      purchased within lifecycle_at_risk_days
--   at_risk     no purchase for lifecycle_at_risk_days
--   churned     no purchase for lifecycle_churned_days
--   reactivated purchased after having been churned, for lifecycle_reactivated_days
{%- set new_days = var('lifecycle_new_days') | int %}
{%- set reactivated_days = var('lifecycle_reactivated_days') | int %}
{%- set at_risk_days = var('lifecycle_at_risk_days') | int %}
{%- set churned_days = var('lifecycle_churned_days') | int %}
with purchase_days as (
    select customer_id, order_date
    from {{ ref('int_orders_resolved') }}
    where is_purchase
    group by customer_id, order_date
),

sequenced as (
    select
        customer_id,
        order_date,
        lag(order_date) over (partition by customer_id order by order_date) as previous_order_date,
        lead(order_date) over (partition by customer_id order by order_date) as next_order_date
    from purchase_days
),

order_stages as (
    select
        customer_id,
        order_date,
        next_order_date,
        case
            when previous_order_date is null then 'new'
            when                                                 {{ days_between('previous_order_date', 'order_date') }} > {{ churned_days }}
                then 'reactivated'
            else 'active'
        end as stage
    from sequenced
),

first_orders as (
    select customer_id, min(order_date) as first_order_date
    from purchase_days
    group by customer_id
),

points as (
    select customer_id, order_date as entered_on, stage, next_order_date
    from order_stages
    union all
    select
        customer_id,
        cast({{ dbt.dateadd('day', new_days, 'order_date') }} as date),
        'active',
        next_order_date
    from order_stages
    where stage = 'new'
    union all
    select
        customer_id,
        cast({{ dbt.dateadd('day', reactivated_days, 'order_date') }} as date),
        'active',
        next_order_date
    from order_stages
    where stage = 'reactivated'
    union all
    select
        customer_id,
        cast({{ dbt.dateadd('day', at_risk_days, 'order_date') }} as date),
        'at_risk',
        next_order_date
    from order_stages
    union all
    select
        customer_id,
        cast({{ dbt.dateadd('day', churned_days, 'order_date') }} as date),
        'churned',
        next_order_date
    from order_stages
    union all
    select
        customers.customer_id,
        cast(customers.signed_up_at as date),
        'prospect',
        first_orders.first_order_date
    from {{ ref('dim_customers') }} as customers
    left join first_orders on customers.customer_id = first_orders.customer_id
    where
        customers.signed_up_at is not null
        and (
            first_orders.first_order_date is null
            or cast(customers.signed_up_at as date) < first_orders.first_order_date
        )
),

bounded as (
    select customer_id, entered_on, stage
    from points
    where
        entered_on <= {{ as_of_date() }}
        and (next_order_date is null or entered_on < next_order_date)
),

with_previous as (
    select
        customer_id,
        entered_on,
        stage,
        lag(stage) over (partition by customer_id order by entered_on) as stage_before
    from bounded
),

changes as (
    select customer_id, entered_on, stage
    from with_previous
    where stage_before is null or stage_before <> stage
),

final as (
    select
        customer_id,
        stage,
        entered_on,
        lead(entered_on) over (partition by customer_id order by entered_on) as exited_on,
        lag(stage) over (partition by customer_id order by entered_on) as previous_stage,
        row_number() over (partition by customer_id order by entered_on) as spell_number,
        lead(entered_on) over (partition by customer_id order by entered_on) is null as is_current
    from changes
)

select * from final
