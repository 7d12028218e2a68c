-- The days each customer's lead score is evaluated on: one row per customer and score day,
-- while the customer has no purchase (up to the day before the first one).
--   * every day of the last `lead_history_days` days up to the as-of date, from the customer's
--     first sign of life (signup or first scored occurrence) on: stage history is exact there;
--   * before that window, the days a behaviour rule's occurrence happened: the score only rises
--     on such a day (between them it only decays), so the first day the MQL threshold was
--     crossed is exact over the whole history.
--   * the days a CRM stage was recorded (lead_crm_stages), so a CRM stage shows on its day even
--     before that window, and a customer known to the CRM only is scored from its first status on.
-- A customer with neither a signup date, an occurrence nor a CRM status is scored on the as-of
-- date only.
{%- set history_days = var('lead_history_days') | int %}
{%- if history_days < 31 %}
    {{ exceptions.raise_compiler_error("var lead_history_days must be at least 31 (the backtest looks 30 days back); got " ~ history_days) }}
{%- endif %}
with customers as (
    select
        customer_id,
        cast(signed_up_at as date) as signed_up_on,
        cast(first_order_at as date) as first_purchase_on
    from {{ ref('dim_customers') }}
),

occurrence_days as (
    select distinct customer_id, cast(occurred_at as date) as occurred_on
    from {{ ref('lead_score_occurrences') }}
),

crm_days as (
    select distinct customer_id, in_force_from as changed_on
    from {{ ref('lead_crm_stages') }}
),

first_occurrences as (
    select customer_id, min(occurred_on) as first_occurred_on
    from (
        select customer_id, occurred_on from occurrence_days
        union all
        select customer_id, changed_on from crm_days
    ) as signs
    group by customer_id
),

bounds as (
    select
        customers.customer_id,
        customers.first_purchase_on,
        coalesce(
            case
                when first_occurrences.first_occurred_on < customers.signed_up_on
                    then first_occurrences.first_occurred_on
                else coalesce(customers.signed_up_on, first_occurrences.first_occurred_on)
            end,
            {{ as_of_date() }}
        ) as first_on
    from customers
    left join first_occurrences on customers.customer_id = first_occurrences.customer_id
),

recent_days as (
    select cast({{ dbt.dateadd('day', '-offsets.i', as_of_date()) }} as date) as score_on
    from ({{ integer_series(0, history_days - 1, 'i') }}) as offsets
),

daily as (
    select bounds.customer_id, recent_days.score_on
    from bounds
    inner join recent_days on bounds.first_on <= recent_days.score_on
),

earlier as (
    select occurrence_days.customer_id, occurrence_days.occurred_on as score_on
    from occurrence_days
    where occurrence_days.occurred_on < cast({{ dbt.dateadd('day', 1 - history_days, as_of_date()) }} as date)
),

earlier_crm as (
    select crm_days.customer_id, crm_days.changed_on as score_on
    from crm_days
    where crm_days.changed_on < cast({{ dbt.dateadd('day', 1 - history_days, as_of_date()) }} as date)
),

candidates as (
    select customer_id, score_on from daily
    union
    select customer_id, score_on from earlier
    union
    select customer_id, score_on from earlier_crm
)

select
    candidates.customer_id,
    candidates.score_on
from candidates
inner join bounds on candidates.customer_id = bounds.customer_id
where bounds.first_purchase_on is null or candidates.score_on < bounds.first_purchase_on
