-- Grain: one row per customer_id × channel that must not get messages any more: a hard
-- bounce (the address does not exist) or a spam complaint, up to the as-of date. The
-- earliest such event decides the reason and `since` (a complaint wins a tie).
-- activation/policies.py skips these customers like tideline_sync.suppressions.
with suppressing_events as (
    select
        customer_id,
        channel,
        case when event_type = 'complained' then 'complained' else 'hard_bounced' end as reason,
        occurred_at,
        event_id
    from {{ ref('fct_message_events') }}
    where
        customer_id is not null
        and channel is not null
        and (event_type = 'complained' or (event_type = 'bounced' and bounce_type = 'hard'))
),

ranked as (
    select
        *,
        row_number() over (
            partition by customer_id, channel
            order by occurred_at, case when reason = 'complained' then 0 else 1 end, event_id
        ) as event_rank,
        count(*) over (partition by customer_id, channel) as events
    from suppressing_events
),

final as (
    select
        customer_id,
        channel,
        reason,
        occurred_at as since,
        events
    from ranked
    where event_rank = 1
)

select * from final
