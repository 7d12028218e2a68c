-- One row per customer: the lifecycle stage on the as-of date.
with current_spell as (
    select customer_id, stage, entered_on, previous_stage
    from {{ ref('customer_lifecycle_history') }}
    where is_current
),

final as (
    select
        customers.customer_id,
        coalesce(current_spell.stage, 'prospect') as lifecycle_stage,
        current_spell.entered_on as stage_entered_on,
        {{ days_between('current_spell.entered_on', as_of_date()) }}             as days_in_stage,
        current_spell.previous_stage,
        {{ days_between('customers.last_order_at', as_of_date()) }}             as days_since_last_purchase,
        customers.order_count,
        {{ as_of_date() }} as as_of_date
    from {{ ref('dim_customers') }} as customers
    left join current_spell on customers.customer_id = current_spell.customer_id
)

select * from final
