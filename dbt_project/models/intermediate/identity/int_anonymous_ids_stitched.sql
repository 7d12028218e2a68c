-- Anonymous id (device or cookie) -> resolved customer: the customer of the first
-- event on that anonymous id that also carries a customer_id (signup, login, …).
with identified as (
    select
        events.anonymous_id,
        resolved.customer_id,
        events.occurred_at,
        row_number() over (
            partition by events.anonymous_id order by events.occurred_at, events.event_id
        ) as nth
    from {{ ref('stg_events__events') }} as events
    inner join {{ ref('int_accounts_resolved') }} as resolved on events.customer_id = resolved.account_id
    where events.anonymous_id is not null and events.occurred_at < {{ as_of_cutoff() }}
)

select anonymous_id, customer_id, occurred_at as identified_at
from identified
where nth = 1
