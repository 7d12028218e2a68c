-- The tags that read ml.customer_scores; without scores (none, empty, null) none match.
-- Generated from dbt_project/tags.yml: do not edit. Change the rules there, then run
-- `tideline tags build` (make test fails while this file is stale).
with

-- high_value_at_risk: Valuable customers likely to leave
high_value_at_risk__matched as (
    -- compiled conditions are one line each (docs/audiences.md, How it compiles)
    -- noqa: disable=AL01,LT14
    select
        c.customer_id,
        coalesce(sc.scored_at, cast({{ as_of_date() }} as timestamp)) as tagged_at,
        {{ number_text('100 * sc.churn_probability') }} as reason_1,
        {{ number_text('sc.predicted_clv', 2) }} as reason_3,
        {{ number_text('100 * ' ~ var('tag_high_value_at_risk_top_clv_share')) }} as reason_5
    from {{ ref('dim_customers') }} as c
    left join (select customer_id, scored_at, churn_probability, purchase_propensity, expected_purchases, p_alive, predicted_clv from (select customer_id, scored_at, churn_probability, purchase_propensity, expected_purchases, p_alive, predicted_clv, row_number() over (partition by customer_id order by as_of_date desc, scored_at desc) as nth from {{ source('ml', 'customer_scores') }} where as_of_date <= {{ as_of_date() }}) as s where nth = 1) as sc on c.customer_id = sc.customer_id
    where (exists (select 1 from (select customer_id, churn_probability from (select customer_id, churn_probability, row_number() over (partition by customer_id order by as_of_date desc, scored_at desc) as nth from {{ source('ml', 'customer_scores') }} where as_of_date <= {{ as_of_date() }}) s1 where nth = 1) r2 where r2.customer_id = c.customer_id and r2.churn_probability >= {{ var('tag_high_value_at_risk_churn') }}) and exists (select 1 from (select v5.customer_id, percent_rank() over (order by v5.predicted_clv desc) as share_rank from (select customer_id, predicted_clv from (select customer_id, predicted_clv, row_number() over (partition by customer_id order by as_of_date desc, scored_at desc) as nth from {{ source('ml', 'customer_scores') }} where as_of_date <= {{ as_of_date() }}) s3 where nth = 1) v5 where v5.predicted_clv is not null) r4 where r4.customer_id = c.customer_id and r4.share_rank < {{ var('tag_high_value_at_risk_top_clv_share') }}))
    -- noqa: enable=all
),

high_value_at_risk as (
    select
        customer_id,
        'high_value_at_risk' as tag,
        tagged_at,
        'churn risk ' || reason_1 || '%, predicted value ' || reason_3 || ' in the top ' || reason_5 || '%' as reason
    from high_value_at_risk__matched
),

final as (
    select customer_id, tag, tagged_at, reason from high_value_at_risk
)

select customer_id, tag, tagged_at, reason, {{ as_of_date() }} as as_of_date
from final
