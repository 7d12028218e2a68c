-- Marketing touches per resolved customer (docs/attribution.md): one per message a
-- customer engaged with (a human click beats a human open) and one per web session
-- that landed with utm parameters. Sessions without utm (direct) are not touches;
-- sessions of visitors never identified are left out (no customer to credit).
with message_engagement as (
    select
        events.event_id,
        events.message_key,
        events.customer_id,
        events.campaign,
        events.channel,
        events.occurred_at,
        case when events.event_type = 'clicked' then 'click' else 'open' end as touch_type,
        row_number() over (
            partition by coalesce(events.message_key, events.event_id)
            order by case when events.event_type = 'clicked' then 0 else 1 end, events.occurred_at, events.event_id
        ) as nth
    from {{ ref('fct_message_events') }} as events
    where
        events.event_type in ('opened', 'clicked')
        and events.is_human
        and events.customer_id is not null
        and events.occurred_at < {{ as_of_cutoff() }}
),

message_touches as (
    select
        'message:' || coalesce(engagement.message_key, 'event:' || engagement.event_id) as touchpoint_id,
        coalesce(resolved.customer_id, engagement.customer_id) as customer_id,
        engagement.occurred_at as touched_at,
        engagement.channel,
        engagement.touch_type,
        engagement.campaign,
        'tideline / ' || engagement.channel as source_medium,
        engagement.message_key
    from message_engagement as engagement
    left join {{ ref('int_accounts_resolved') }} as resolved on engagement.customer_id = resolved.account_id
    where engagement.nth = 1
),

utm_events as (
    select
        event_id,
        coalesce(session_id, 'event:' || event_id) as session_key,
        customer_id,
        occurred_at,
        utm_source,
        utm_medium,
        utm_campaign,
        row_number() over (
            partition by coalesce(session_id, 'event:' || event_id) order by occurred_at, event_id
        ) as nth
    from {{ ref('int_events_stitched') }}
    where
        customer_id is not null
        and (utm_source is not null or utm_medium is not null or utm_campaign is not null)
),

session_touches as (
    select
        'session:' || session_key as touchpoint_id,
        customer_id,
        occurred_at as touched_at,
        {{ utm_channel('utm_source', 'utm_medium') }} as channel,
        'web_session' as touch_type,
        utm_campaign as campaign,
        coalesce(utm_source, '(none)') || ' / ' || coalesce(utm_medium, '(none)') as source_medium,
        cast(null as {{ dbt.type_string() }}) as message_key
    from utm_events
    where nth = 1
),

final as (
    select touchpoint_id, customer_id, touched_at, channel, touch_type, campaign, source_medium, message_key
    from message_touches
    union all
    select touchpoint_id, customer_id, touched_at, channel, touch_type, campaign, source_medium, message_key
    from session_touches
)

select touchpoint_id, customer_id, touched_at, channel, touch_type, campaign, source_medium, message_key
from final
