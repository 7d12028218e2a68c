-- Does the lead score rank who buys? As of the cutoff `lead_backtest_horizon_days` days before
-- the as-of date, the leads of that day (known, no purchase yet) are ranked by three scores and
-- the ROC AUC says how well each puts the leads who made a first purchase in the following
-- horizon (up to the as-of date) above those who did not (0.5: no better than chance):
--   lead_score           the total lead score on the cutoff day (lead_score_daily)
--   recency              days since the lead's latest behaviour event or signup, fewer ranking higher
--   purchase_propensity  the propensity model's latest score on or before the cutoff
--                        (ml.customer_scores): empty until scores that old exist
-- AUC = (sum of the buyers' ranks - n(n+1)/2) / (buyers * non-buyers), ties at their mean rank.
{%- set horizon = var('lead_backtest_horizon_days') | int %}
with cutoff as (
    select cast({{ dbt.dateadd('day', -horizon, as_of_date()) }} as date) as cutoff_on
),

population as (
    select daily.customer_id, daily.total_score, cutoff.cutoff_on
    from {{ ref('lead_score_daily') }} as daily
    inner join cutoff on daily.score_on = cutoff.cutoff_on
),

labelled as (
    select
        population.customer_id,
        population.total_score,
        population.cutoff_on,
        case when customers.first_order_at is not null then 1 else 0 end as bought
    from population
    inner join {{ ref('dim_customers') }} as customers on population.customer_id = customers.customer_id
),

last_seen as (
    select labelled.customer_id, max(events.occurred_at) as last_event_at
    from labelled
    inner join {{ ref('int_events_stitched') }} as events on labelled.customer_id = events.customer_id
    where events.occurred_at < cast({{ dbt.dateadd('day', 1, 'labelled.cutoff_on') }} as timestamp)
    group by labelled.customer_id
),

propensity as (
    select customer_id, purchase_propensity
    from (
        select
            scores.customer_id,
            scores.purchase_propensity,
            row_number() over (
                partition by scores.customer_id order by scores.as_of_date desc, scores.scored_at desc
            ) as nth
        from {{ source('ml', 'customer_scores') }} as scores
        cross join cutoff
        where scores.as_of_date <= cutoff.cutoff_on and scores.purchase_propensity is not null
    ) as latest
    where nth = 1
),

scored as (
    select 'lead_score' as scorer, customer_id, bought, cast(total_score as {{ type_double() }}) as score
    from labelled
    union all
    select
        'recency' as scorer,
        labelled.customer_id,
        labelled.bought,
        -cast(
            {{ dbt.datediff(
                'coalesce(cast(last_seen.last_event_at as date), cast(customers.signed_up_at as date), labelled.cutoff_on)',
                'labelled.cutoff_on', 'day') }}
            as {{ type_double() }}
        ) as score
    from labelled
    inner join {{ ref('dim_customers') }} as customers on labelled.customer_id = customers.customer_id
    left join last_seen on labelled.customer_id = last_seen.customer_id
    union all
    select 'purchase_propensity' as scorer, labelled.customer_id, labelled.bought, propensity.purchase_propensity
    from labelled
    inner join propensity on labelled.customer_id = propensity.customer_id
),

ranked as (
    select
        scorer,
        bought,
        rank() over (partition by scorer order by score)
        + (count(*) over (partition by scorer, score) - 1) / 2.0 as mean_rank
    from scored
),

totals as (
    select
        scorer,
        count(*) as leads,
        sum(bought) as buyers,
        sum(case when bought = 1 then mean_rank else 0 end) as buyer_rank_sum
    from ranked
    group by scorer
),

aucs as (
    select
        scorer,
        leads,
        buyers,
        case
            when buyers > 0 and leads > buyers
                then (buyer_rank_sum - buyers * (buyers + 1) / 2.0) / (buyers * (leads - buyers))
        end as exact_auc
    from totals
),

scorers as (
    select 'lead_score' as scorer, 1 as scorer_order
    union all
    select 'recency', 2
    union all
    select 'purchase_propensity', 3
)

select
    scorers.scorer,
    scorers.scorer_order,
    cutoff.cutoff_on,
    {{ horizon }} as horizon_days,
    coalesce(totals.leads, 0) as leads,
    coalesce(totals.buyers, 0) as buyers,
    cast(round(cast(totals.exact_auc as numeric(18, 6)), 4) as {{ type_double() }}) as roc_auc,
    case
        when totals.leads is null and scorers.scorer = 'purchase_propensity'
            then 'no propensity scores as of the cutoff yet (they accumulate with daily runs)'
        when totals.leads is null then 'no leads on the cutoff day'
        when totals.buyers = 0 then 'no lead bought in the horizon: AUC undefined'
        when totals.buyers = totals.leads then 'every lead bought in the horizon: AUC undefined'
    end as note,
    {{ as_of_date() }} as as_of_date
from scorers
cross join cutoff
left join aucs as totals on scorers.scorer = totals.scorer
