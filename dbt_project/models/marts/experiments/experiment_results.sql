-- One row per campaign × channel × arm: reach, conversion and lift against the holdout, the
-- sample-ratio check, Holm-adjusted p-values, guardrail rates and the winner.
-- Methods (Wilson, Newcombe, Katz log, pooled z-test, SRM chi-square, Holm, guardrails, the
-- winner rule): docs/experiments.md.
{%- set z = experiment_z_critical() %}
{%- set level = experiment_confidence_level() %}
{%- set alpha = '(1 - ' ~ level ~ ')' %}
{%- set srm_alpha = var('experiment_srm_alpha', 0.001) | float %}
{%- set guardrails = ['unsubscribed', 'complained', 'bounced'] %}

with exposed_messages as (
    select
        message_key,
        campaign,
        channel,
        variant,
        customer_id,
        content_version,
        is_sent,
        is_holdout,
        exposed_at
    from {{ ref('fct_messages') }}
    where
        (is_sent or is_holdout)
        and exposed_at is not null
        -- a roll-out's winner went to the rest by choice, not by chance: not part of the comparison
        and coalesce(launch_stage, '') <> 'rollout'
),

-- A customer counts once per campaign × channel, in the arm of their first exposure
-- (intention to treat: later exposures never move them to another arm).
first_exposures as (
    select
        campaign,
        channel,
        customer_id,
        is_holdout,
        variant,
        content_version,
        row_number() over (
            partition by campaign, channel, customer_id order by exposed_at, message_key
        ) as exposure_number
    from exposed_messages
),

recipients as (
    select campaign, channel, customer_id, is_holdout, variant, content_version
    from first_exposures
    where exposure_number = 1
),

-- Orders within the conversion window after any of the customer's exposures in the
-- campaign × channel, each order once.
recipient_orders as (
    select distinct
        exposed_messages.campaign,
        exposed_messages.channel,
        exposed_messages.customer_id,
        conversions.order_id,
        conversions.order_amount
    from {{ ref('int_message_conversions') }} as conversions
    inner join exposed_messages on conversions.message_key = exposed_messages.message_key
),

-- Guardrail events (docs/experiments.md) drawn by the campaign × channel's sent messages, one
-- flag per customer and event type.
recipient_guardrails as (
    select
        exposed_messages.campaign,
        exposed_messages.channel,
        exposed_messages.customer_id,
        {%- for event in guardrails %}
            max(case when events.event_type = '{{ event }}' then 1 else 0 end) as {{ event }}
            {%- if not loop.last %},{% endif %}
        {%- endfor %}
    from {{ ref('fct_message_events') }} as events
    inner join exposed_messages on events.message_key = exposed_messages.message_key
    where exposed_messages.is_sent and events.event_type in ('{{ guardrails | join("', '") }}')
    group by exposed_messages.campaign, exposed_messages.channel, exposed_messages.customer_id
),

recipient_outcomes as (
    select
        recipients.campaign,
        recipients.channel,
        recipients.customer_id,
        recipients.is_holdout,
        recipients.variant,
        case when count(recipient_orders.order_id) > 0 then 1 else 0 end as converted,
        coalesce(sum(recipient_orders.order_amount), 0) as revenue
    from recipients
    left join recipient_orders
        on
            recipients.campaign = recipient_orders.campaign
            and recipients.channel = recipient_orders.channel
            and recipients.customer_id = recipient_orders.customer_id
    group by recipients.campaign, recipients.channel, recipients.customer_id, recipients.is_holdout, recipients.variant
),

recipient_results as (
    select
        recipient_outcomes.*,
        {%- for event in guardrails %}
            coalesce(recipient_guardrails.{{ event }}, 0) as {{ event }}
            {%- if not loop.last %},{% endif %}
        {%- endfor %}
    from recipient_outcomes
    left join recipient_guardrails
        on
            recipient_outcomes.campaign = recipient_guardrails.campaign
            and recipient_outcomes.channel = recipient_guardrails.channel
            and recipient_outcomes.customer_id = recipient_guardrails.customer_id
),

arm_members as (
    select
        campaign, channel, variant as arm, 'variant' as arm_type, converted, revenue,
        unsubscribed, complained, bounced
    from recipient_results
    where not is_holdout and variant is not null
    union all
    select
        campaign, channel, 'treated' as arm, 'treated' as arm_type, converted, revenue,
        unsubscribed, complained, bounced
    from recipient_results
    where not is_holdout
    union all
    select
        campaign, channel, 'holdout' as arm, 'holdout' as arm_type, converted, revenue,
        unsubscribed, complained, bounced
    from recipient_results
    where is_holdout
),

arms as (
    select
        campaign,
        channel,
        arm,
        arm_type,
        count(*) as reach,
        sum(converted) as converters,
        sum(revenue) as revenue,
        cast(sum(converted) as {{ type_double() }}) / count(*) as conversion_rate,
        {%- for event in guardrails %}
            sum({{ event }}) as {{ event }}
            {%- if not loop.last %},{% endif %}
        {%- endfor %}
    from arm_members
    group by campaign, channel, arm, arm_type
),

-- Each variant and the treated arm against the holdout of the same campaign × channel.
compared as (
    select
        arms.*,
        holdout.arm as baseline_arm,
        holdout.reach as baseline_reach,
        holdout.converters as baseline_converters,
        holdout.conversion_rate as baseline_rate,
        cast(arms.converters + holdout.converters as {{ type_double() }})
        / (arms.reach + holdout.reach) as pooled_rate
    from arms
    left join arms as holdout
        on
            arms.campaign = holdout.campaign
            and arms.channel = holdout.channel
            and holdout.arm_type = 'holdout'
            and arms.arm_type <> 'holdout'
),

statistics as (
    select
        *,
        -- Wilson score interval for the arm's rate, and for the baseline (holdout) arm's, for
        -- the interval of the difference
        {{ wilson_centre('conversion_rate', 'reach', z) }} as wilson_centre,
        {{ wilson_half_width('conversion_rate', 'reach', z) }} as wilson_half_width,
        {{ wilson_centre('baseline_rate', 'baseline_reach', z) }} as baseline_wilson_centre,
        {{ wilson_half_width('baseline_rate', 'baseline_reach', z) }} as baseline_wilson_half_width,
        conversion_rate - baseline_rate as absolute_lift,
        case when baseline_rate > 0 then conversion_rate / baseline_rate - 1 end as relative_lift,
        -- Katz: standard error of ln(rate / baseline rate) by the delta method
        case
            when converters > 0 and baseline_converters > 0
                then sqrt(1.0 / converters - 1.0 / reach + 1.0 / baseline_converters - 1.0 / baseline_reach)
        end as log_ratio_se,
        -- pooled two-proportion z-test
        {{ pooled_z('conversion_rate - baseline_rate', 'pooled_rate', '1.0 / reach + 1.0 / baseline_reach') }}
            as z_score
    from compared
),

tested as (
    select
        *,
        {{ normal_two_sided_p('z_score') }} as p_value,
        -- Newcombe's hybrid score interval of the difference (method 10): built from the two
        -- Wilson intervals, so it stays inside [-1, 1] and is sound with few or no converters
        -- (a Wald interval collapses when an arm has 0 converters)
        {{ newcombe_low(
            'conversion_rate', 'wilson_centre - wilson_half_width',
            'baseline_rate', 'baseline_wilson_centre + baseline_wilson_half_width'
        ) }} as absolute_lift_low,
        {{ newcombe_high(
            'conversion_rate', 'wilson_centre + wilson_half_width',
            'baseline_rate', 'baseline_wilson_centre - baseline_wilson_half_width'
        ) }} as absolute_lift_high
    from statistics
),

-- Every ordered pair of variants of a campaign × channel, with their pooled rates: conversion,
-- and each guardrail.
variant_pairs as (
    select
        candidate.campaign,
        candidate.channel,
        candidate.arm,
        other.arm as other_arm,
        candidate.conversion_rate - other.conversion_rate as difference,
        1.0 / candidate.reach + 1.0 / other.reach as inverse_reach_sum,
        cast(candidate.converters + other.converters as {{ type_double() }})
        / (candidate.reach + other.reach) as pooled_rate,
        {%- for event in guardrails %}
            cast(candidate.{{ event }} as {{ type_double() }}) / candidate.reach
            - cast(other.{{ event }} as {{ type_double() }}) / other.reach as {{ event }}_difference,
            cast(candidate.{{ event }} + other.{{ event }} as {{ type_double() }})
            / (candidate.reach + other.reach) as {{ event }}_pooled_rate
            {%- if not loop.last %},{% endif %}
        {%- endfor %}
    from arms as candidate
    inner join arms as other
        on
            candidate.campaign = other.campaign
            and candidate.channel = other.channel
            and candidate.arm <> other.arm
    where candidate.arm_type = 'variant' and other.arm_type = 'variant'
),

variant_pair_z as (
    select
        campaign,
        channel,
        arm,
        other_arm,
        difference,
        {{ pooled_z('difference', 'pooled_rate', 'inverse_reach_sum') }} as z_score,
        {%- for event in guardrails %}
            {{ event }}_difference,
            {{ pooled_z(event ~ '_difference', event ~ '_pooled_rate', 'inverse_reach_sum') }} as {{ event }}_z_score
            {%- if not loop.last %},{% endif %}
        {%- endfor %}
    from variant_pairs
),

variant_pair_tests as (
    select
        campaign,
        channel,
        arm,
        other_arm,
        difference,
        {{ normal_two_sided_p('z_score') }} as p_value,
        {%- for event in guardrails %}
            {{ event }}_difference,
            {{ normal_two_sided_p(event ~ '_z_score') }} as {{ event }}_p_value
            {%- if not loop.last %},{% endif %}
        {%- endfor %}
    from variant_pair_z
),

-- Sample-ratio mismatch: the reach of each arm (variants and holdout; 'treated' when the campaign
-- has no variants) against the shares the latest design of each content version intended,
-- weighted by the customers first exposed under that version. Only campaign × channels whose
-- every exposed version has a recorded design are checked.
designs as (
    select campaign, channel, content_version, arm, expected_share
    from {{ ref('stg_tideline_experiments__experiment_designs') }}
),

exposure_versions as (
    select campaign, channel, content_version, count(*) as recipients
    from recipients
    group by campaign, channel, content_version
),

design_totals as (
    select campaign, channel, content_version, sum(expected_share) as total_share
    from designs
    group by campaign, channel, content_version
    having sum(expected_share) > 0
),

design_coverage as (
    select
        exposure_versions.campaign,
        exposure_versions.channel,
        count(*) as versions,
        count(design_totals.content_version) as designed_versions
    from exposure_versions
    left join design_totals
        on
            exposure_versions.campaign = design_totals.campaign
            and exposure_versions.channel = design_totals.channel
            and exposure_versions.content_version = design_totals.content_version
    group by exposure_versions.campaign, exposure_versions.channel
),

expected_arms as (
    select
        designs.campaign,
        designs.channel,
        designs.arm,
        sum(exposure_versions.recipients * designs.expected_share / design_totals.total_share) as expected
    from designs
    inner join design_totals
        on
            designs.campaign = design_totals.campaign
            and designs.channel = design_totals.channel
            and designs.content_version = design_totals.content_version
    inner join exposure_versions
        on
            designs.campaign = exposure_versions.campaign
            and designs.channel = exposure_versions.channel
            and designs.content_version = exposure_versions.content_version
    group by designs.campaign, designs.channel, designs.arm
),

observed_arms as (
    select campaign, channel, arm, reach
    from arms
    where
        arm_type in ('variant', 'holdout')
        or (
            arm_type = 'treated'
            and not exists (
                select 1 from arms as variants
                where
                    variants.campaign = arms.campaign
                    and variants.channel = arms.channel
                    and variants.arm_type = 'variant'
            )
        )
),

srm_cells as (
    select
        coalesce(observed_arms.campaign, expected_arms.campaign) as campaign,
        coalesce(observed_arms.channel, expected_arms.channel) as channel,
        coalesce(observed_arms.reach, 0) as observed,
        coalesce(expected_arms.expected, 0) as expected
    from observed_arms
    full outer join expected_arms
        on
            observed_arms.campaign = expected_arms.campaign
            and observed_arms.channel = expected_arms.channel
            and observed_arms.arm = expected_arms.arm
),

srm_statistics as (
    select
        campaign,
        channel,
        sum(
            case when expected > 0 then (observed - expected) * (observed - expected) / expected else 0 end
        ) as chi_square,
        -- arms the design gives no share and no one is in are no cells
        sum(case when expected > 0 or observed > 0 then 1 else 0 end) - 1 as degrees_of_freedom,
        -- customers in an arm the design gives no share: a mismatch whatever the counts
        max(case when expected = 0 and observed > 0 then 1 else 0 end) as has_unexpected_arm
    from srm_cells
    group by campaign, channel
),

srm as (
    select
        srm_statistics.campaign,
        srm_statistics.channel,
        case
            when srm_statistics.has_unexpected_arm = 1 then 0.0
            else {{ chi_square_upper_tail('srm_statistics.chi_square', 'srm_statistics.degrees_of_freedom') }}
        end as srm_p_value
    from srm_statistics
    inner join design_coverage
        on
            srm_statistics.campaign = design_coverage.campaign
            and srm_statistics.channel = design_coverage.channel
    where design_coverage.designed_versions = design_coverage.versions and srm_statistics.degrees_of_freedom >= 1
),

-- Holm: the comparisons of a campaign × channel (each variant against the holdout, and each
-- unordered pair of variants) form one family when more than two arms (variants and holdout) are
-- compared; the i-th smallest of m p-values becomes max over j <= i of min(1, (m - j + 1) p_(j)).
compared_arms as (
    select campaign, channel, count(*) as arm_count
    from arms
    where arm_type in ('variant', 'holdout')
    group by campaign, channel
),

comparisons as (
    select campaign, channel, arm, baseline_arm as other_arm, p_value
    from tested
    where arm_type = 'variant' and baseline_arm is not null
    union all
    select campaign, channel, arm, other_arm, p_value
    from variant_pair_tests
    where arm < other_arm
),

holm_ranked as (
    select
        comparisons.*,
        compared_arms.arm_count,
        row_number() over (
            partition by comparisons.campaign, comparisons.channel
            order by comparisons.p_value nulls last, comparisons.arm, comparisons.other_arm
        ) as holm_rank,
        count(comparisons.p_value) over (partition by comparisons.campaign, comparisons.channel) as tests
    from comparisons
    inner join compared_arms
        on
            comparisons.campaign = compared_arms.campaign
            and comparisons.channel = compared_arms.channel
),

holm_adjusted as (
    select
        campaign,
        channel,
        arm,
        other_arm,
        case
            when p_value is null then null
            when arm_count <= 2 then p_value
            else least(1.0, max((tests - holm_rank + 1) * p_value) over (
                partition by campaign, channel order by holm_rank
                rows between unbounded preceding and current row
            ))
        end as p_value_adjusted
    from holm_ranked
),

-- A winner has a higher rate than every other variant, each difference significant (Holm-adjusted
-- when it applies); guardrails and the SRM check are applied in final.
winners as (
    select pairs.campaign, pairs.channel, pairs.arm
    from variant_pair_tests as pairs
    left join holm_adjusted as adjusted
        on
            pairs.campaign = adjusted.campaign
            and pairs.channel = adjusted.channel
            and least(pairs.arm, pairs.other_arm) = adjusted.arm
            and greatest(pairs.arm, pairs.other_arm) = adjusted.other_arm
    group by pairs.campaign, pairs.channel, pairs.arm
    having min(
        case when pairs.difference > 0 and adjusted.p_value_adjusted < {{ alpha }} then 1 else 0 end
    ) = 1
),

-- Guardrails: a variant breaches when any guardrail rate is significantly higher (pooled z-test,
-- p < 1 - confidence level, not adjusted: a guardrail errs on the side of caution) than that of
-- any other variant of the campaign × channel.
guardrail_checks as (
    select
        campaign,
        channel,
        arm,
        max(
            case
                {%- for event in guardrails %}
                    when {{ event }}_difference > 0 and {{ event }}_p_value < {{ alpha }} then 1
                {%- endfor %}
                else 0
            end
        ) = 1 as guardrail_breached
    from variant_pair_tests
    group by campaign, channel, arm
),

final as (
    select
        tested.campaign,
        tested.channel,
        tested.arm,
        tested.arm_type,
        tested.reach,
        tested.converters,
        cast(tested.conversion_rate as decimal(18, 6)) as conversion_rate,
        cast(tested.wilson_centre - tested.wilson_half_width as decimal(18, 6)) as conversion_rate_ci_low,
        cast(tested.wilson_centre + tested.wilson_half_width as decimal(18, 6)) as conversion_rate_ci_high,
        cast(tested.revenue as decimal(18, 2)) as revenue,
        cast(tested.revenue / tested.reach as decimal(18, 4)) as revenue_per_recipient,
        tested.baseline_arm,
        cast(tested.absolute_lift as decimal(18, 6)) as absolute_lift,
        cast(tested.absolute_lift_low as decimal(18, 6)) as absolute_lift_ci_low,
        cast(tested.absolute_lift_high as decimal(18, 6)) as absolute_lift_ci_high,
        cast(tested.relative_lift as decimal(18, 6)) as relative_lift,
        case
            when tested.log_ratio_se is not null
                then cast(
                    exp(ln(tested.conversion_rate / tested.baseline_rate) - {{ z }} * tested.log_ratio_se) - 1
                    as decimal(18, 6)
                )
        end as relative_lift_ci_low,
        case
            when tested.log_ratio_se is not null
                then cast(
                    exp(ln(tested.conversion_rate / tested.baseline_rate) + {{ z }} * tested.log_ratio_se) - 1
                    as decimal(18, 6)
                )
        end as relative_lift_ci_high,
        cast(tested.z_score as decimal(18, 4)) as z_score,
        cast(tested.p_value as decimal(18, 6)) as p_value,
        cast(
            case when tested.arm_type = 'variant' then against_holdout.p_value_adjusted else tested.p_value end
            as decimal(18, 6)
        ) as p_value_adjusted,
        case
            when tested.baseline_arm is not null
                then coalesce(
                    case
                        when tested.arm_type = 'variant' then against_holdout.p_value_adjusted else tested.p_value
                    end < {{ alpha }},
                    false
                )
        end as is_significant,
        {%- for event, rate in [('unsubscribed', 'unsubscribe_rate'), ('complained', 'complaint_rate'), ('bounced', 'bounce_rate')] %}
            case
                when tested.arm_type <> 'holdout'
                    then cast(cast(tested.{{ event }} as {{ type_double() }}) / tested.reach as decimal(18, 6))
            end as {{ rate }},
        {%- endfor %}
        guardrail_checks.guardrail_breached,
        cast(srm.srm_p_value as decimal(18, 6)) as srm_p_value,
        srm.srm_p_value < {{ srm_alpha }} as srm_mismatch,
        (
            winners.arm is not null
            and not coalesce(guardrail_checks.guardrail_breached, false)
            and not coalesce(srm.srm_p_value < {{ srm_alpha }}, false)
        ) as is_winner,
        cast({{ level }} as decimal(4, 3)) as confidence_level
    from tested
    left join holm_adjusted as against_holdout
        on
            tested.campaign = against_holdout.campaign
            and tested.channel = against_holdout.channel
            and tested.arm = against_holdout.arm
            and tested.baseline_arm = against_holdout.other_arm
            and tested.arm_type = 'variant'
    left join winners
        on
            tested.campaign = winners.campaign
            and tested.channel = winners.channel
            and tested.arm = winners.arm
            and tested.arm_type = 'variant'
    left join guardrail_checks
        on
            tested.campaign = guardrail_checks.campaign
            and tested.channel = guardrail_checks.channel
            and tested.arm = guardrail_checks.arm
            and tested.arm_type = 'variant'
    left join srm
        on
            tested.campaign = srm.campaign
            and tested.channel = srm.channel
)

select * from final
