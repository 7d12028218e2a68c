-- Lead stage history: one row per customer and stage spell, from the daily scores
-- (lead_score_daily). A spell starts on the first score day of a new stage and ends on the score
-- day the next stage started, or on the first purchase (next_stage = 'customer'); it is open
-- (exited_on null) while it lasts on the as-of date. Within the last lead_history_days days every
-- day is scored, so every change is on its day; before that only the days a behaviour occurred are
-- scored, so a rise is on its day and a fall shows on the next occurrence day.
with daily as (
    select
        customer_id,
        score_on,
        lead_stage,
        lag(lead_stage) over (partition by customer_id order by score_on) as stage_before
    from {{ ref('lead_score_daily') }}
),

starts as (
    select customer_id, score_on as entered_on, lead_stage, stage_before as previous_stage
    from daily
    where stage_before is null or stage_before <> lead_stage
),

spells as (
    select
        customer_id,
        lead_stage,
        entered_on,
        previous_stage,
        lead(entered_on) over (partition by customer_id order by entered_on) as next_entered_on,
        lead(lead_stage) over (partition by customer_id order by entered_on) as following_stage
    from starts
),

customers as (
    select customer_id, cast(first_order_at as date) as first_purchase_on
    from {{ ref('dim_customers') }}
)

select
    spells.customer_id,
    spells.lead_stage,
    spells.entered_on,
    coalesce(spells.next_entered_on, customers.first_purchase_on) as exited_on,
    spells.previous_stage,
    case
        when spells.next_entered_on is not null then spells.following_stage
        when customers.first_purchase_on is not null then 'customer'
    end as next_stage,
    {{ as_of_date() }} as as_of_date
from spells
inner join customers on spells.customer_id = customers.customer_id
