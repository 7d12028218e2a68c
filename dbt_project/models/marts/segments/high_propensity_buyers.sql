-- Grain: one row per customer in the top decile of purchase propensity (ML scores of the as-of date).
-- Only scored customers rank: without a propensity model the scores are null and the segment is empty.
with ranked as (
    select
        customer_id,
        purchase_propensity,
        predicted_clv,
        percent_rank() over (order by purchase_propensity desc) as propensity_rank_share
    from {{ source('ml', 'customer_scores') }}
    where as_of_date = {{ as_of_date() }} and purchase_propensity is not null
)

select
    ranked.customer_id,
    customers.email,
    customers.phone,
    customers.first_name,
    customers.last_name,
    customers.country,
    {{ round_to('ranked.purchase_propensity', 4) }} as purchase_propensity,
    {{ round_to('ranked.predicted_clv', 2) }} as predicted_clv
from ranked
inner join {{ ref('dim_customers') }} as customers on ranked.customer_id = customers.customer_id
where ranked.propensity_rank_share < 0.1
