-- Grain: message_key × order_id. Completed orders of the message's customer placed after
-- the message was exposed (sent, or held out for the holdout group) and at most
-- var('conversion_window_days') days later: exposed_at < ordered_at <= exposed_at + window.
-- Holdout messages are included (their exposed_at is when the holdout was recorded), so
-- experiments compare like with like. Orders come from int_orders_resolved (as-of filtered,
-- resolved customer), the same customer id the segments and so the ledger use.
with exposed_messages as (
    select
        message_key,
        customer_id,
        campaign,
        variant,
        channel,
        is_holdout,
        exposed_at
    from {{ ref('int_messages_collapsed') }}
    where exposed_at is not null
),

purchases as (
    select
        order_id,
        customer_id,
        ordered_at,
        amount
    from {{ ref('int_orders_resolved') }}
    where is_purchase
),

final as (
    select
        exposed_messages.message_key,
        exposed_messages.customer_id,
        exposed_messages.campaign,
        exposed_messages.variant,
        exposed_messages.channel,
        exposed_messages.is_holdout,
        exposed_messages.exposed_at,
        purchases.order_id,
        purchases.ordered_at,
        purchases.amount as order_amount,
        cast({{ dbt.datediff('exposed_messages.exposed_at', 'purchases.ordered_at', 'second') }} as {{ dbt.type_numeric() }})
        / 86400 as days_to_convert
    from exposed_messages
    inner join purchases
        on
            exposed_messages.customer_id = purchases.customer_id
            and exposed_messages.exposed_at < purchases.ordered_at
            and purchases.ordered_at
            <= {{ dbt.dateadd('day', var('conversion_window_days'), 'exposed_messages.exposed_at') }}
)

select * from final
