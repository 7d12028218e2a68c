-- One row per lead: a customer without a purchase on the as-of date, with the fit, engagement
-- and total score, the stage, since when, when the MQL threshold was first crossed (computed over
-- the history as of the as-of date, never remembered from earlier runs), and the top reasons.
-- A CRM stage in force on the as-of date (crm_stage) is the lead's stage; owner_id is the first
-- linked active employee (customer_owners).
with leads as (
    select customer_id
    from {{ ref('dim_customers') }}
    where first_order_at is null
),

today as (
    select customer_id, fit_score, engagement_score, total_score, lead_stage, crm_stage
    from {{ ref('lead_score_daily') }}
    where score_on = {{ as_of_date() }}
),

first_mql as (
    select customer_id, min(score_on) as mql_first_on
    from {{ ref('lead_score_daily') }}
    where score_stage = 'marketing_qualified'
    group by customer_id
),

current_spells as (
    select customer_id, entered_on
    from {{ ref('lead_stage_history') }}
    where exited_on is null
),

last_engaged as (
    select occurrences.customer_id, max(occurrences.occurred_at) as last_engaged_at
    from {{ ref('lead_score_occurrences') }} as occurrences
    inner join {{ ref('lead_score_rules') }} as rules on occurrences.rule = rules.rule
    where rules.points > 0
    group by occurrences.customer_id
),

raw_points as (
    select
        customer_id,
        sum(case when kind = 'fit' then points else 0 end) as fit_uncapped,
        sum(case when kind = 'behaviour' then points else 0 end) as engagement_uncapped
    from {{ ref('lead_score_reasons') }}
    group by customer_id
),

first_owners as (
    select customer_id, staff_id as owner_id
    from (
        select
            customer_id,
            staff_id,
            row_number() over (partition by customer_id order by owner_rank) as active_rank
        from {{ ref('customer_owners') }}
        where staff_is_active
    ) as active_owners
    where active_rank = 1
),

top_reasons as (
    select
        customer_id,
        {{ dbt.listagg('reason', "'; '", 'order by reason_rank') }} as top_reasons
    from {{ ref('lead_score_reasons') }}
    where reason_rank <= 3
    group by customer_id
)

select
    leads.customer_id,
    coalesce(today.fit_score, 0) as fit_score,
    coalesce(today.engagement_score, 0) as engagement_score,
    coalesce(today.total_score, 0) as total_score,
    coalesce(today.lead_stage, 'raw_lead') as lead_stage,
    coalesce(current_spells.entered_on, {{ as_of_date() }}) as stage_entered_on,
    first_mql.mql_first_on,
    coalesce(today.lead_stage, 'raw_lead') = 'marketing_qualified' as is_mql,
    coalesce(
        round(cast(raw_points.fit_uncapped as numeric(18, 6)), 2) > round(cast(today.fit_score as numeric(18, 6)), 2)
        or round(cast(raw_points.engagement_uncapped as numeric(18, 6)), 2)
        > round(cast(today.engagement_score as numeric(18, 6)), 2),
        false
    ) as is_capped,
    coalesce(top_reasons.top_reasons, 'no scoring rule holds') as top_reasons,
    last_engaged.last_engaged_at,
    today.crm_stage,
    first_owners.owner_id,
    {{ as_of_date() }} as as_of_date
from leads
left join today on leads.customer_id = today.customer_id
left join first_mql on leads.customer_id = first_mql.customer_id
left join current_spells on leads.customer_id = current_spells.customer_id
left join last_engaged on leads.customer_id = last_engaged.customer_id
left join raw_points on leads.customer_id = raw_points.customer_id
left join top_reasons on leads.customer_id = top_reasons.customer_id
left join first_owners on leads.customer_id = first_owners.customer_id
