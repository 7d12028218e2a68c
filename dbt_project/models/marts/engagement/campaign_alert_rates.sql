-- The rates the campaign-performance alerts judge (docs/alerts.md), over the alert window: the
-- `alert_window_days` days ending with the latest send_date of fct_campaign_performance. Counts
-- are summed per campaign × channel × variant over the window and the rates recomputed from the
-- sums with the definitions of campaign_rates() (so a longer window weighs days by volume). The unsubscribe spike is judged per campaign × channel, every variant
-- together, against the trailing rate: all unsubscribes over all delivered of the
-- `alert_trailing_days` days before the window (0 without any). Python compares these columns
-- with the thresholds of config/activation.yml and computes no rate itself.
{%- set window_days = positive_var('alert_window_days') %}
{%- set trailing_days = positive_var('alert_trailing_days') %}
with performance as (
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
        unique_opens,
        unsubscribes,
        complaints
    from {{ ref('fct_campaign_performance') }}
),

bounds as (
    select
        cast({{ dbt.dateadd('day', 1 - window_days, 'max(send_date)') }} as date) as window_start,
        max(send_date) as window_end,
        cast({{ dbt.dateadd('day', 1 - window_days - trailing_days, 'max(send_date)') }} as date)
            as trailing_start
    from performance
),

in_window as (
    select performance.*
    from performance
    inner join bounds on performance.send_date between bounds.window_start and bounds.window_end
),

per_variant as (
    select
        campaign,
        channel,
        variant,
        cast(sum(sent) as {{ dbt.type_bigint() }}) as sent,
        cast(sum(failed) as {{ dbt.type_bigint() }}) as failed,
        cast(sum(attempted) as {{ dbt.type_bigint() }}) as attempted,
        cast(sum(delivered) as {{ dbt.type_bigint() }}) as delivered,
        cast(sum(bounced) as {{ dbt.type_bigint() }}) as bounced,
        cast(sum(failed_or_bounced) as {{ dbt.type_bigint() }}) as failed_or_bounced,
        cast(sum(unique_opens) as {{ dbt.type_bigint() }}) as unique_opens,
        cast(sum(unsubscribes) as {{ dbt.type_bigint() }}) as unsubscribes,
        cast(sum(complaints) as {{ dbt.type_bigint() }}) as complaints
    from in_window
    group by campaign, channel, variant
),

variant_rates as (
    select
        per_variant.*,
        {{ campaign_rate('delivery_failure_rate') }} as delivery_failure_rate,
        {{ campaign_rate('open_rate') }} as open_rate,
        {{ campaign_rate('unsubscribe_rate') }} as unsubscribe_rate,
        {{ campaign_rate('complaint_rate') }} as complaint_rate
    from per_variant
),

-- every variant of a campaign × channel together, in the window and in the days before it
channel_totals as (
    select
        performance.campaign,
        performance.channel,
        case when performance.send_date >= bounds.window_start then 'window' else 'trailing' end as period,
        cast(sum(performance.unsubscribes) as {{ dbt.type_bigint() }}) as unsubscribes,
        cast(sum(performance.delivered) as {{ dbt.type_bigint() }}) as delivered
    from performance
    inner join bounds on performance.send_date between bounds.trailing_start and bounds.window_end
    group by performance.campaign, performance.channel, period
),

channel_rates as (
    select
        campaign,
        channel,
        period,
        unsubscribes,
        delivered,
        {{ campaign_rate('unsubscribe_rate') }} as unsubscribe_rate
    from channel_totals
),

final as (
    select
        variant_rates.campaign,
        variant_rates.channel,
        variant_rates.variant,
        bounds.window_start,
        bounds.window_end,
        {{ window_days }} as window_days,
        {{ trailing_days }} as trailing_days,
        variant_rates.sent,
        variant_rates.failed,
        variant_rates.attempted,
        variant_rates.delivered,
        variant_rates.bounced,
        variant_rates.failed_or_bounced,
        variant_rates.unique_opens,
        variant_rates.unsubscribes,
        variant_rates.complaints,
        variant_rates.delivery_failure_rate,
        variant_rates.open_rate,
        variant_rates.unsubscribe_rate,
        variant_rates.complaint_rate,
        all_variant_rates.unsubscribes as all_variants_unsubscribes,
        all_variant_rates.delivered as all_variants_delivered,
        all_variant_rates.unsubscribe_rate as all_variants_unsubscribe_rate,
        coalesce(before_window_rates.unsubscribes, 0) as trailing_unsubscribes,
        coalesce(before_window_rates.delivered, 0) as trailing_delivered,
        coalesce(before_window_rates.unsubscribe_rate, 0) as trailing_unsubscribe_rate
    from variant_rates
    cross join bounds
    inner join channel_rates as all_variant_rates
        on
            variant_rates.campaign = all_variant_rates.campaign
            and variant_rates.channel = all_variant_rates.channel
            and all_variant_rates.period = 'window'
    left join channel_rates as before_window_rates
        on
            variant_rates.campaign = before_window_rates.campaign
            and variant_rates.channel = before_window_rates.channel
            and before_window_rates.period = 'trailing'
)

select * from final
