-- Behaviour events up to the as-of date with the resolved customer: directly from
-- the event's customer_id, else through its stitched anonymous id (also for events
-- before the signup). Events of never-identified visitors keep a null customer_id.
select
    events.event_id,
    events.event_type,
    events.occurred_at,
    events.anonymous_id,
    coalesce(direct.customer_id, stitched.customer_id) as customer_id,
    direct.customer_id is null and stitched.customer_id is not null as is_stitched,
    events.session_id,
    events.product_id,
    events.url,
    events.utm_source,
    events.utm_medium,
    events.utm_campaign
from {{ ref('stg_events__events') }} as events
left join {{ ref('int_accounts_resolved') }} as direct on events.customer_id = direct.account_id
left join {{ ref('int_anonymous_ids_stitched') }} as stitched on events.anonymous_id = stitched.anonymous_id
where events.occurred_at < {{ as_of_cutoff() }}
