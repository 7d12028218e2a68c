-- The lead score of each customer on each score day: fit and engagement (behaviour) scores,
-- the total and the stage. A group gives at most its cap (the sum of its rules' points, capped);
-- fit score = sum of the fit groups, engagement score = sum of the behaviour groups. The stage is
-- the CRM stage in force on the day (lead_crm_stages) when there is one: it wins over the stage the
-- score reaches (score_stage), from the day it was recorded until the customer's next status.
with rule_points as (
    select
        rule_days.customer_id,
        rule_days.score_on,
        rule_days.rule_group,
        rule_days.kind,
        rule_days.points,
        rules.group_cap
    from {{ ref('lead_score_rule_days') }} as rule_days
    inner join {{ ref('lead_score_rules') }} as rules on rule_days.rule = rules.rule
),

group_points as (
    select
        customer_id,
        score_on,
        rule_group,
        kind,
        case when sum(points) > max(group_cap) then max(group_cap) else sum(points) end as points
    from rule_points
    group by customer_id, score_on, rule_group, kind
),

scores as (
    select
        days.customer_id,
        days.score_on,
        coalesce(sum(case when group_points.kind = 'fit' then group_points.points end), 0) as fit_score,
        coalesce(sum(case when group_points.kind = 'behaviour' then group_points.points end), 0)
            as engagement_score
    from {{ ref('lead_score_days') }} as days
    left join group_points on days.customer_id = group_points.customer_id and days.score_on = group_points.score_on
    group by days.customer_id, days.score_on
),

thresholds as (
    select
        max(case when lead_stage = 'nurtured' then min_score end) as nurtured_score,
        max(case when lead_stage = 'marketing_qualified' then min_score end) as mql_score
    from {{ ref('lead_stages') }}
),

rounded as (
    select
        customer_id,
        score_on,
        cast(round(cast(fit_score as numeric(18, 6)), 2) as {{ type_double() }}) as fit_score,
        cast(round(cast(engagement_score as numeric(18, 6)), 2) as {{ type_double() }}) as engagement_score,
        cast(round(cast(fit_score + engagement_score as numeric(18, 6)), 2) as {{ type_double() }}) as total_score
    from scores
),

staged as (
    select
        rounded.customer_id,
        rounded.score_on,
        rounded.fit_score,
        rounded.engagement_score,
        rounded.total_score,
        case
            when rounded.total_score >= thresholds.mql_score then 'marketing_qualified'
            when rounded.total_score >= thresholds.nurtured_score then 'nurtured'
            else 'raw_lead'
        end as score_stage,
        crm.crm_stage
    from rounded
    cross join thresholds
    left join {{ ref('lead_crm_stages') }} as crm
        on
            rounded.customer_id = crm.customer_id
            and rounded.score_on >= crm.in_force_from
            and (crm.in_force_until is null or rounded.score_on < crm.in_force_until)
)

select
    customer_id,
    score_on,
    fit_score,
    engagement_score,
    total_score,
    score_stage,
    crm_stage,
    coalesce(crm_stage, score_stage) as lead_stage
from staged
