-- Grain: one row per campaign × variant × channel × send_date for messages that were sent
-- or failed (variant 'all' when the campaign has no experiment; holdout messages are not
-- here: see experiment_results). send_date is the day the message was sent; a failed
-- message counts on the day of its latest failure. Engagement counts distinct messages
-- (a re-delivered webhook, a second open, bot opens do not add). The rates are those of the
-- macro campaign_rates() (docs/engagement.md).
with messages as (
    select
        message_key,
        campaign,
        coalesce(variant, 'all') as variant,
        channel,
        coalesce(send_date, cast(status_at as date)) as send_date,
        is_sent,
        is_failed
    from {{ ref('fct_messages') }}
    where (is_sent or is_failed) and not is_holdout
),

events as (
    select * from {{ ref('fct_message_events') }}
),

-- one row per message: what happened to it
message_outcomes as (
    select
        messages.message_key,
        {{ message_outcome_columns('events') }}
    from messages
    left join events on messages.message_key = events.message_key
    where messages.is_sent
    group by messages.message_key
),

conversions as (
    select distinct
        messages.campaign,
        messages.variant,
        messages.channel,
        messages.send_date,
        message_conversions.message_key,
        message_conversions.order_id,
        message_conversions.order_amount
    from {{ ref('int_message_conversions') }} as message_conversions
    inner join messages on message_conversions.message_key = messages.message_key
    where messages.is_sent
),

orders_by_group as (
    select
        campaign,
        variant,
        channel,
        send_date,
        count(distinct order_id) as conversions,
        count(distinct message_key) as converters
    from conversions
    group by campaign, variant, channel, send_date
),

-- an order converted by two messages of one group counts once
revenue_by_group as (
    select
        campaign,
        variant,
        channel,
        send_date,
        sum(order_amount) as revenue
    from (
        select distinct campaign, variant, channel, send_date, order_id, order_amount
        from conversions
    ) as distinct_orders
    group by campaign, variant, channel, send_date
),

counts as (
    select
        messages.campaign,
        messages.variant,
        messages.channel,
        messages.send_date,
        sum(case when messages.is_sent then 1 else 0 end) as sent,
        sum(case when messages.is_failed then 1 else 0 end) as failed,
        sum(coalesce(outcomes.bounced, 0)) as bounced,
        sum(coalesce(outcomes.hard_bounced, 0)) as hard_bounced,
        sum(coalesce(outcomes.opened, 0)) as unique_opens,
        sum(coalesce(outcomes.bot_opens, 0)) as bot_opens,
        sum(coalesce(outcomes.clicked, 0)) as unique_clicks,
        sum(coalesce(outcomes.unsubscribed, 0)) as unsubscribes,
        sum(coalesce(outcomes.complained, 0)) as complaints
    from messages
    left join message_outcomes as outcomes on messages.message_key = outcomes.message_key
    group by messages.campaign, messages.variant, messages.channel, messages.send_date
),

costs as (
    select
        channel,
        amount,
        valid_from,
        valid_to
    from {{ ref('channel_costs') }}
    where cost_type = 'per_message'
),

measured as (
    select
        counts.campaign,
        counts.variant,
        counts.channel,
        counts.send_date,
        counts.sent,
        counts.failed,
        counts.sent + counts.failed as attempted,
        counts.sent - counts.bounced as delivered,
        counts.bounced,
        counts.failed + counts.bounced as failed_or_bounced,
        counts.hard_bounced,
        counts.unique_opens,
        counts.bot_opens,
        counts.unique_clicks,
        counts.unsubscribes,
        counts.complaints,
        coalesce(orders_by_group.conversions, 0) as conversions,
        coalesce(orders_by_group.converters, 0) as converters,
        cast(coalesce(revenue_by_group.revenue, 0) as {{ dbt.type_numeric() }}) as revenue,
        cast(counts.sent * coalesce(costs.amount, 0) as {{ dbt.type_numeric() }}) as cost
    from counts
    left join orders_by_group
        on
            counts.campaign = orders_by_group.campaign
            and counts.variant = orders_by_group.variant
            and counts.channel = orders_by_group.channel
            and counts.send_date = orders_by_group.send_date
    left join revenue_by_group
        on
            counts.campaign = revenue_by_group.campaign
            and counts.variant = revenue_by_group.variant
            and counts.channel = revenue_by_group.channel
            and counts.send_date = revenue_by_group.send_date
    left join costs
        on
            counts.channel = costs.channel
            and counts.send_date >= costs.valid_from
            and (costs.valid_to is null or counts.send_date <= costs.valid_to)
),

final as (
    select
        campaign,
        variant,
        channel,
        send_date,
        sent,
        failed,
        attempted,
        delivered,
        bounced,
        failed_or_bounced,
        hard_bounced,
        unique_opens,
        bot_opens,
        unique_clicks,
        unsubscribes,
        complaints,
        conversions,
        converters,
        revenue,
        cost,
        {%- for rate in campaign_rates() %}
            {{ campaign_rate(rate) }} as {{ rate }},
        {%- endfor %}
        {{ share('revenue - cost', 'cost') }} as roi
    from measured
)

select * from final
