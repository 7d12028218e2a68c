-- Grain: one row per staff notification about a customer (digests themselves are left out: their
-- members are here, with via_digest and the digest's status). Whether the customer converted: a
-- completed order after the notification was made and within var('staff_conversion_days') days.
with notifications as (
    select * from {{ ref('stg_tideline_staff__notifications') }}
    where rule_kind <> 'digest'
),

orders as (
    select
        customer_id,
        ordered_at
    from {{ ref('int_orders_resolved') }}
    where is_purchase
),

conversions as (
    select
        n.notification_id,
        min(o.ordered_at) as converted_at
    from notifications as n
    inner join orders as o
        on
            n.customer_id = o.customer_id
            and n.created_at < o.ordered_at
            and o.ordered_at <= {{ dbt.dateadd('day', var('staff_conversion_days'), 'n.created_at') }}
    group by n.notification_id
),

final as (
    select
        n.notification_id,
        n.rule,
        n.rule_kind,
        n.customer_id,
        n.event_key,
        n.staff_id,
        n.route,
        n.fell_back,
        n.fallback_reason,
        n.destination,
        n.handle_kind,
        n.status,
        n.status_reason,
        n.message as reason,
        n.via_digest,
        n.occurred_at,
        n.created_at,
        n.sent_at,
        n.attempts,
        c.converted_at,
        c.converted_at is not null as converted
    from notifications as n
    left join conversions as c on n.notification_id = c.notification_id
)

select * from final
