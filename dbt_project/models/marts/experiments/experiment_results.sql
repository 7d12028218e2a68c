-- One row per campaign × channel × arm: reach, conversion and lift against the holdout.
-- Methods (Wilson, Newcombe, Katz log, pooled z-test, the winner rule): docs/experiments.md.
{%- set z = experiment_z_critical() %}
{%- set level = experiment_confidence_level() %}
{%- set alpha = '(1 - ' ~ level ~ ')' %}

with exposed_messages as (
    select
        message_key,
        campaign,
        channel,
        variant,
        customer_id,
        is_holdout,
        exposed_at
    from {{ ref('fct_messages') }}
    where (is_sent or is_holdout) and exposed_at is not null
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
        row_number() over (
            partition by campaign, channel, customer_id order by exposed_at, message_key
        ) as exposure_number
    from exposed_messages
),

recipients as (
    select campaign, channel, customer_id, is_holdout, variant
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

arm_members as (
    select campaign, channel, variant as arm, 'variant' as arm_type, converted, revenue
    from recipient_outcomes
    where not is_holdout and variant is not null
    union all
    select campaign, channel, 'treated' as arm, 'treated' as arm_type, converted, revenue
    from recipient_outcomes
    where not is_holdout
    union all
    select campaign, channel, 'holdout' as arm, 'holdout' as arm_type, converted, revenue
    from recipient_outcomes
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
        cast(sum(converted) as double precision) / count(*) as conversion_rate
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
        cast(arms.converters + holdout.converters as double precision)
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

-- Every ordered pair of variants of a campaign × channel, with their pooled rate.
variant_pairs as (
    select
        candidate.campaign,
        candidate.channel,
        candidate.arm,
        candidate.conversion_rate - other.conversion_rate as difference,
        1.0 / candidate.reach + 1.0 / other.reach as inverse_reach_sum,
        cast(candidate.converters + other.converters as double precision)
        / (candidate.reach + other.reach) as pooled_rate
    from arms as candidate
    inner join arms as other
        on
            candidate.campaign = other.campaign
            and candidate.channel = other.channel
            and candidate.arm <> other.arm
    where candidate.arm_type = 'variant' and other.arm_type = 'variant'
),

variant_pair_tests as (
    select
        campaign,
        channel,
        arm,
        difference,
        {{ pooled_z('difference', 'pooled_rate', 'inverse_reach_sum') }} as z_score
    from variant_pairs
),

-- A winner has a higher rate than every other variant, each difference significant.
winners as (
    select campaign, channel, arm
    from variant_pair_tests
    group by campaign, channel, arm
    having min(
        case when difference > 0 and {{ normal_two_sided_p('z_score') }} < {{ alpha }} then 1 else 0 end
    ) = 1
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
        case
            when tested.baseline_arm is not null then coalesce(tested.p_value < {{ alpha }}, false)
        end as is_significant,
        winners.arm is not null as is_winner,
        cast({{ level }} as decimal(4, 3)) as confidence_level
    from tested
    left join winners
        on
            tested.campaign = winners.campaign
            and tested.channel = winners.channel
            and tested.arm = winners.arm
            and tested.arm_type = 'variant'
)

select * from final
