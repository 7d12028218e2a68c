-- Grain: one row per journey × version: entries, treated and held out, the conversion of each
-- (the goal within its window) and the lift of the journey over its holdout, with the same
-- statistics as experiment_results (Wilson, Newcombe, pooled z-test; macros/statistics.sql).
{%- set z = experiment_z_critical() %}
{%- set level = experiment_confidence_level() %}
{%- set alpha = '(1 - ' ~ level ~ ')' %}

with entries as (
    select * from {{ ref('fct_journey_entries') }}
),

counts as (
    select
        journey,
        version,
        count(*) as entries,
        sum(case when not is_holdout then 1 else 0 end) as treated_entries,
        sum(case when is_holdout then 1 else 0 end) as holdout_entries,
        sum(case when not is_holdout and converted then 1 else 0 end) as treated_converters,
        sum(case when is_holdout and converted then 1 else 0 end) as holdout_converters,
        sum(case when is_goal_window_open then 1 else 0 end) as undecided_entries,
        sum(messages_sent) as messages_sent,
        min(entered_at) as first_entered_at,
        max(entered_at) as last_entered_at
    from entries
    group by journey, version
),

rates as (
    select
        *,
        case
            when treated_entries > 0 then cast(treated_converters as {{ type_double() }}) / treated_entries
        end as treated_rate,
        case
            when holdout_entries > 0 then cast(holdout_converters as {{ type_double() }}) / holdout_entries
        end as holdout_rate,
        case
            when treated_entries > 0 and holdout_entries > 0
                then
                    cast(treated_converters + holdout_converters as {{ type_double() }})
                    / (treated_entries + holdout_entries)
        end as pooled_rate
    from counts
),

statistics as (
    select
        *,
        {{ wilson_centre('treated_rate', 'nullif(treated_entries, 0)', z) }} as treated_centre,
        {{ wilson_half_width('treated_rate', 'nullif(treated_entries, 0)', z) }} as treated_half_width,
        {{ wilson_centre('holdout_rate', 'nullif(holdout_entries, 0)', z) }} as holdout_centre,
        {{ wilson_half_width('holdout_rate', 'nullif(holdout_entries, 0)', z) }} as holdout_half_width,
        {{ pooled_z(
            'treated_rate - holdout_rate', 'pooled_rate',
            '1.0 / nullif(treated_entries, 0) + 1.0 / nullif(holdout_entries, 0)'
        ) }} as z_score
    from rates
),

tested as (
    select
        *,
        {{ normal_two_sided_p('z_score') }} as p_value,
        {{ newcombe_low(
            'treated_rate', 'treated_centre - treated_half_width',
            'holdout_rate', 'holdout_centre + holdout_half_width'
        ) }} as lift_low,
        {{ newcombe_high(
            'treated_rate', 'treated_centre + treated_half_width',
            'holdout_rate', 'holdout_centre - holdout_half_width'
        ) }} as lift_high
    from statistics
),

final as (
    select
        journey,
        version,
        entries,
        treated_entries,
        holdout_entries,
        treated_converters,
        holdout_converters,
        undecided_entries,
        messages_sent,
        first_entered_at,
        last_entered_at,
        cast(treated_rate as decimal(18, 6)) as treated_conversion_rate,
        cast(treated_centre - treated_half_width as decimal(18, 6)) as treated_conversion_rate_ci_low,
        cast(treated_centre + treated_half_width as decimal(18, 6)) as treated_conversion_rate_ci_high,
        cast(holdout_rate as decimal(18, 6)) as holdout_conversion_rate,
        cast(holdout_centre - holdout_half_width as decimal(18, 6)) as holdout_conversion_rate_ci_low,
        cast(holdout_centre + holdout_half_width as decimal(18, 6)) as holdout_conversion_rate_ci_high,
        cast(treated_rate - holdout_rate as decimal(18, 6)) as absolute_lift,
        cast(lift_low as decimal(18, 6)) as absolute_lift_ci_low,
        cast(lift_high as decimal(18, 6)) as absolute_lift_ci_high,
        case when holdout_rate > 0 then cast(treated_rate / holdout_rate - 1 as decimal(18, 6)) end as relative_lift,
        cast(z_score as decimal(18, 4)) as z_score,
        cast(p_value as decimal(18, 6)) as p_value,
        case
            when holdout_entries > 0 and treated_entries > 0 then coalesce(p_value < {{ alpha }}, false)
        end as is_significant,
        cast({{ level }} as decimal(4, 3)) as confidence_level,
        {{ as_of_date() }} as as_of_date
    from tested
)

select * from final
