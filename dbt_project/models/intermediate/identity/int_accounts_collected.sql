-- One row per account id seen in any source up to the as-of date: CRM contacts,
-- orders, and events that carry a customer_id (signups, logins).
with contacts as (
    select customer_id as account_id, created_at as first_seen_at, 1 as in_crm, 0 as in_commerce, 0 as in_web
    from {{ ref('stg_crm__contacts') }}
    where created_at is null or created_at < {{ as_of_cutoff() }}
),

orders as (
    select customer_id as account_id, min(ordered_at) as first_seen_at, 0 as in_crm, 1 as in_commerce, 0 as in_web
    from {{ ref('stg_commerce__orders') }}
    where ordered_at < {{ as_of_cutoff() }}
    group by customer_id
),

events as (
    select customer_id as account_id, min(occurred_at) as first_seen_at, 0 as in_crm, 0 as in_commerce, 1 as in_web
    from {{ ref('stg_events__events') }}
    where customer_id is not null and occurred_at < {{ as_of_cutoff() }}
    group by customer_id
),

unioned as (
    select * from contacts
    union all
    select * from orders
    union all
    select * from events
),

final as (
    select
        account_id,
        min(first_seen_at) as first_seen_at,
        max(in_crm) = 1 as in_crm,
        max(in_commerce) = 1 as in_commerce,
        max(in_web) = 1 as in_web
    from unioned
    group by account_id
)

select * from final
