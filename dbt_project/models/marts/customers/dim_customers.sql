-- One row per resolved customer: the 360° profile as of the as-of date.
with customers as (
    select customer_id, count(*) as merged_accounts
    from {{ ref('int_accounts_resolved') }}
    group by customer_id
),

first_seen as (
    select resolved.customer_id, min(collected.first_seen_at) as first_seen_at
    from {{ ref('int_accounts_collected') }} as collected
    inner join {{ ref('int_accounts_resolved') }} as resolved on collected.account_id = resolved.account_id
    group by resolved.customer_id
),

event_stats as (
    select
        customer_id,
        min(case when event_type = 'signup' then occurred_at end) as first_signup_at,
        max(occurred_at) as last_event_at
    from {{ ref('int_events_stitched') }}
    where customer_id is not null
    group by customer_id
),

first_touch as (
    select customer_id, utm_source, utm_medium
    from (
        select
            customer_id,
            utm_source,
            utm_medium,
            row_number() over (partition by customer_id order by occurred_at, event_id) as nth
        from {{ ref('int_events_stitched') }}
        where customer_id is not null
    ) as ranked
    where nth = 1
),

consents as (
    select
        customer_id,
        max(case when channel = 'email' and is_granted then 1 else 0 end) = 1 as email_opt_in,
        max(case when channel = 'sms' and is_granted then 1 else 0 end) = 1 as sms_opt_in,
        max(case when channel = 'push' and is_granted then 1 else 0 end) = 1 as push_opt_in,
        max(case when channel = 'email' then consented_at end) as email_consent_at,
        max(case when channel = 'sms' then consented_at end) as sms_consent_at,
        max(case when channel = 'push' then consented_at end) as push_consent_at
    from {{ ref('int_consents_latest') }}
    group by customer_id
),

final as (
    select
        customers.customer_id,
        customers.merged_accounts,
        contacts.email,
        contacts.phone,
        contacts.first_name,
        contacts.last_name,
        contacts.country,
        contacts.city,
        contacts.timezone,
        contacts.birth_date,
        case
            when contacts.created_at is null then coalesce(event_stats.first_signup_at, first_seen.first_seen_at)
            when event_stats.first_signup_at is null then contacts.created_at
            when event_stats.first_signup_at < contacts.created_at then event_stats.first_signup_at
            else contacts.created_at
        end as signed_up_at,
        case
            when first_touch.customer_id is not null then coalesce(first_touch.utm_source, 'direct')
            else coalesce(contacts.lead_source, 'unknown')
        end as acquisition_source,
        first_touch.utm_medium as acquisition_medium,
        coalesce(consents.email_opt_in, false) as email_opt_in,
        coalesce(consents.sms_opt_in, false) as sms_opt_in,
        coalesce(consents.push_opt_in, false) as push_opt_in,
        consents.email_consent_at,
        consents.sms_consent_at,
        consents.push_consent_at,
        orders.first_order_at,
        orders.last_order_at,
        coalesce(orders.order_count, 0) as order_count,
        coalesce(orders.revenue, 0) as revenue,
        orders.average_order_value,
        coalesce(orders.coupon_order_count, 0) as coupon_order_count,
        case
            when orders.last_order_at is null then event_stats.last_event_at
            when event_stats.last_event_at is null then orders.last_order_at
            when event_stats.last_event_at > orders.last_order_at then event_stats.last_event_at
            else orders.last_order_at
        end as last_activity_at,
        coalesce(orders.order_count, 0) > 0 as is_buyer,
        {{ as_of_date() }} as as_of_date
    from customers
    inner join first_seen on customers.customer_id = first_seen.customer_id
    left join {{ ref('int_contacts_merged') }} as contacts on customers.customer_id = contacts.customer_id
    left join {{ ref('int_customer_orders_aggregated') }} as orders on customers.customer_id = orders.customer_id
    left join event_stats on customers.customer_id = event_stats.customer_id
    left join first_touch on customers.customer_id = first_touch.customer_id
    left join consents on customers.customer_id = consents.customer_id
)

select * from final
