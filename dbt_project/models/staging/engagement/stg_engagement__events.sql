-- One row per usable engagement event line (see base_engagement__events for what is
-- rejected and why). A re-delivered webhook is still two rows here, with the same
-- event_id; fct_message_events keeps one.
select
    event_id,
    event_type,
    occurred_at,
    received_at,
    event_source,
    provider,
    message_key,
    customer_id,
    campaign,
    variant,
    segment,
    channel,
    link_index,
    url,
    user_agent,
    bounce_type,
    _file,
    _row
from {{ ref('base_engagement__events') }}
where not _rejected
