-- Why each lead has its score on the as-of date: one row per lead and rule that holds, with the
-- points in words ("Viewed pricing 2 days ago (+22 of 25)"), ranked by how much they weigh.
-- Points are before the group caps (lead_scores says when a cap applied).
with leads as (
    select customer_id
    from {{ ref('dim_customers') }}
    where first_order_at is null
),

today as (
    select rule_days.*
    from {{ ref('lead_score_rule_days') }} as rule_days
    inner join leads on rule_days.customer_id = leads.customer_id
    where rule_days.score_on = {{ as_of_date() }}
),

worded as (
    select
        customer_id,
        rule,
        rule_group,
        kind,
        points,
        full_points,
        latest_on,
        age_days,
        reason
        || case
            when kind = 'fit' then ''
            when age_days = 0 then ' today'
            when age_days = 1 then ' yesterday'
            else ' ' || cast(age_days as {{ dbt.type_string() }}) || ' days ago'
        end
        || ' ('
        || case when points >= 0 then '+' else '' end
        || cast(cast({{ round_to('points') }} as integer) as {{ dbt.type_string() }})
        || case
            when kind = 'fit' then ''
            else ' of ' || cast(cast({{ round_to('full_points') }} as integer) as {{ dbt.type_string() }})
        end
        || ')' as reason_text,
        row_number() over (
            partition by customer_id order by abs(points) desc, rule_order
        ) as reason_rank
    from today
)

select
    customer_id,
    rule,
    rule_group,
    kind,
    points,
    full_points,
    latest_on,
    age_days,
    reason_text as reason,
    reason_rank,
    {{ as_of_date() }} as as_of_date
from worded
