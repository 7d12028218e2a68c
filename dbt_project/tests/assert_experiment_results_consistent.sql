-- experiment_results holds together: rates and intervals are ordered shares, converters fit in
-- the reach, lift columns are set exactly when there is a baseline, an adjusted p-value is never
-- below the raw one, a winner is a variant that passed its guardrails and the sample-ratio check,
-- and there is at most one per campaign × channel. Returns the offending rows with the broken rule.
with checks as (
    select
        campaign,
        channel,
        arm,
        case
            when converters > reach then 'converters exceed reach'
            when
                not (
                    0 <= conversion_rate_ci_low and conversion_rate_ci_low <= conversion_rate
                    and conversion_rate <= conversion_rate_ci_high and conversion_rate_ci_high <= 1
                )
                then 'conversion interval out of order'
            when (baseline_arm is null) <> (absolute_lift is null) then 'lift without baseline or baseline without lift'
            when absolute_lift_ci_low > absolute_lift or absolute_lift > absolute_lift_ci_high
                then 'absolute lift outside its interval'
            when relative_lift_ci_low > relative_lift or relative_lift > relative_lift_ci_high
                then 'relative lift outside its interval'
            when p_value < 0 or p_value > 1 then 'p-value outside [0, 1]'
            when p_value_adjusted < p_value or p_value_adjusted > 1 then 'adjusted p-value outside [p-value, 1]'
            when srm_p_value < 0 or srm_p_value > 1 then 'sample-ratio p-value outside [0, 1]'
            when (srm_p_value is null) <> (srm_mismatch is null) then 'sample-ratio mismatch without its p-value'
            when unsubscribe_rate > 1 or complaint_rate > 1 or bounce_rate > 1 then 'guardrail rate above 1'
            when is_winner and arm_type <> 'variant' then 'winner is not a variant'
            when is_winner and (guardrail_breached or srm_mismatch) then 'winner breached a guardrail or the sample ratio'
            when arm_type = 'holdout' and baseline_arm is not null then 'holdout compared with itself'
        end as problem
    from {{ ref('experiment_results') }}
),

winners as (
    select campaign, channel, count(*) as winners
    from {{ ref('experiment_results') }}
    where is_winner
    group by campaign, channel
)

select campaign, channel, arm, problem
from checks
where problem is not null
union all
select campaign, channel, null as arm, 'more than one winner' as problem
from winners
where winners > 1
