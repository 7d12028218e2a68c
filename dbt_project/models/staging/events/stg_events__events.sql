-- Usable behaviour events, one row per event_id.
select
    event_id,
    event_type,
    occurred_at,
    anonymous_id,
    customer_id,
    session_id,
    product_id,
    url,
    utm_source,
    utm_medium,
    utm_campaign,
    _file,
    _row
from {{ ref('base_events__events') }}
where not _rejected
