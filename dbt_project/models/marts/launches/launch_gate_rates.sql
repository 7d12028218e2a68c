-- Grain: one row per activation (sync_key) × content version × gate rate: the counts a staged
-- launch's pilot gate judges (activation/launches/gate.py reads successes and sample, and judges
-- them with a Wilson bound: docs/launches.md). Counted over the activation's sent messages of the
-- content version (holdout and test sends left out, as in fct_campaign_performance): before its
-- gate is judged, a launch has sent its pilot only, so these are the pilot's numbers. Each rate is
-- the campaign rate of the same name (macro campaign_rates: numerator over denominator), counted
-- with the same per-message outcomes (macro message_outcome_columns).
{%- set gate_rates = ['delivery_rate', 'open_rate', 'click_rate', 'unsubscribe_rate', 'complaint_rate', 'bounce_rate'] %}

with messages as (
    select
        message_key,
        sync_key,
        campaign,
        channel,
        content_version,
        is_sent,
        is_failed,
        sent_at
    from {{ ref('fct_messages') }}
    where (is_sent or is_failed) and not is_holdout and content_version is not null
),

events as (
    select * from {{ ref('fct_message_events') }}
),

message_outcomes as (
    select
        messages.message_key,
        {{ message_outcome_columns('events') }}
    from messages
    left join events on messages.message_key = events.message_key
    where messages.is_sent
    group by messages.message_key
),

counts as (
    select
        messages.sync_key,
        messages.campaign,
        messages.channel,
        messages.content_version,
        min(messages.sent_at) as first_sent_at,
        sum(case when messages.is_sent then 1 else 0 end) as sent,
        sum(case when messages.is_failed then 1 else 0 end) as failed,
        sum(coalesce(outcomes.bounced, 0)) as bounced,
        sum(coalesce(outcomes.opened, 0)) as unique_opens,
        sum(coalesce(outcomes.clicked, 0)) as unique_clicks,
        sum(coalesce(outcomes.unsubscribed, 0)) as unsubscribes,
        sum(coalesce(outcomes.complained, 0)) as complaints
    from messages
    left join message_outcomes as outcomes on messages.message_key = outcomes.message_key
    group by messages.sync_key, messages.campaign, messages.channel, messages.content_version
),

measured as (
    select
        sync_key,
        campaign,
        channel,
        content_version,
        first_sent_at,
        sent,
        sent + failed as attempted,
        sent - bounced as delivered,
        bounced,
        failed + bounced as failed_or_bounced,
        unique_opens,
        unique_clicks,
        unsubscribes,
        complaints
    from counts
),

final as (
    {%- for rate in gate_rates %}
        {%- set numerator, denominator, only_channel = campaign_rates()[rate] %}
        {%- set applies = 'true' if only_channel is none else "channel = '" ~ only_channel ~ "'" %}
        select
            sync_key,
            campaign,
            channel,
            content_version,
            '{{ rate }}' as metric,
            cast(case when {{ applies }} then {{ numerator }} end as {{ dbt.type_bigint() }}) as successes,
            cast(case when {{ applies }} then {{ denominator }} end as {{ dbt.type_bigint() }}) as sample,
            {{ campaign_rate(rate) }} as rate,
            first_sent_at
        from measured
        {%- if not loop.last %}
            union all
        {%- endif %}
    {%- endfor %}
)

select * from final
