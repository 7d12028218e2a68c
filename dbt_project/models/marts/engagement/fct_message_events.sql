{#- Bot rule (docs/engagement.md): an open or click is a bot, proxy or prefetch when its
    User-Agent contains one of var('bot_user_agent_patterns') (case-insensitive), or when it
    happened less than var('bot_seconds_after_send') seconds after the message's ledger
    sent_at. Other event types are never bots. -#}
{%- set agent_matches = [] -%}
{%- for pattern in var('bot_user_agent_patterns') -%}
    {%- do agent_matches.append("lower(distinct_events.user_agent) like '%" ~ (pattern | lower | replace("'", "''")) ~ "%'") -%}
{%- endfor -%}
-- Grain: one row per distinct event_id up to the as-of date (a re-delivered webhook once).
with events as (
    select * from {{ ref('stg_engagement__events') }}
    where occurred_at < {{ as_of_cutoff() }}
),

-- the first delivery of each event_id is kept (earliest received, then file and line)
ranked as (
    select
        *,
        row_number() over (
            partition by event_id
            order by received_at nulls last, _file, _row
        ) as delivery_rank,
        count(*) over (partition by event_id) as deliveries
    from events
),

distinct_events as (
    select * from ranked
    where delivery_rank = 1
),

messages as (
    select * from {{ ref('fct_messages') }}
),

joined as (
    select
        distinct_events.event_id,
        distinct_events.message_key,
        coalesce(messages.customer_id, distinct_events.customer_id) as customer_id,
        coalesce(messages.campaign, distinct_events.campaign) as campaign,
        coalesce(messages.variant, distinct_events.variant) as variant,
        coalesce(messages.channel, distinct_events.channel) as channel,
        distinct_events.event_type,
        distinct_events.occurred_at,
        distinct_events.received_at,
        distinct_events.event_source as source,
        distinct_events.provider,
        distinct_events.url,
        distinct_events.link_index,
        distinct_events.bounce_type,
        distinct_events.user_agent,
        distinct_events.deliveries,
        messages.message_key is not null as is_known_message,
        {{ dbt.datediff('messages.sent_at', 'distinct_events.occurred_at', 'second') }} as seconds_since_sent,
        case
            {%- if agent_matches %}
                when distinct_events.event_type in ('opened', 'clicked') and ({{ agent_matches | join(' or ') }})
                    then 'user_agent'
            {%- endif %}
            when
                distinct_events.event_type in ('opened', 'clicked')
                and {{ dbt.datediff('messages.sent_at', 'distinct_events.occurred_at', 'second') }} >= 0
                and {{ dbt.datediff('messages.sent_at', 'distinct_events.occurred_at', 'second') }}
                < {{ var('bot_seconds_after_send') }}
                then 'seconds_after_send'
        end as bot_reason
    from distinct_events
    left join messages on distinct_events.message_key = messages.message_key
),

final as (
    select
        event_id,
        message_key,
        customer_id,
        campaign,
        variant,
        channel,
        event_type,
        occurred_at,
        received_at,
        source,
        provider,
        url,
        link_index,
        bounce_type,
        user_agent,
        bot_reason is not null as is_bot,
        bot_reason,
        bot_reason is null as is_human,
        seconds_since_sent,
        deliveries,
        is_known_message
    from joined
)

select * from final
