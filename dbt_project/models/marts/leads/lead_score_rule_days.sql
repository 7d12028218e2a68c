-- The points of every rule that holds for a customer on a score day (lead_score_days).
-- Fit rules: their condition holds on the as-of date (lead_score_fit); full points every day.
-- Behaviour rules: on day D the rule holds when its latest occurrence up to D is within its
-- window (`within_days: N`: at most N - 1 whole days old) and, with `count: {gte: k}`, the k-th
-- latest is too; its points are points * 0.5 ^ (age / half_life_days), where age is the whole
-- days from the latest occurrence's day to D (0 on the day itself), rounded to 2 decimals.
with rules as (
    select rule, rule_order, rule_group, kind, points, group_cap, half_life_days, window_days, min_count, reason
    from {{ ref('lead_score_rules') }}
),

occurrences as (
    select
        customer_id,
        rule,
        occurred_at,
        cast(occurred_at as date) as occurred_on,
        row_number() over (partition by customer_id, rule order by occurred_at, occurrence_id) as nth
    from {{ ref('lead_score_occurrences') }}
),

-- each occurrence with the day of the k-th latest occurrence as of it (k = the rule's min_count)
counted as (
    select
        occurrences.customer_id,
        occurrences.rule,
        occurrences.occurred_on,
        occurrences.nth,
        kth.occurred_on as counted_from_on
    from occurrences
    inner join rules on occurrences.rule = rules.rule
    left join occurrences as kth
        on
            occurrences.customer_id = kth.customer_id
            and occurrences.rule = kth.rule
            and occurrences.nth - rules.min_count + 1 = kth.nth
),

day_ends as (
    select
        customer_id,
        rule,
        occurred_on,
        counted_from_on,
        row_number() over (partition by customer_id, rule, occurred_on order by nth desc) as from_end
    from counted
),

-- from each occurrence day until the next one, that day's occurrence is the latest
spells as (
    select
        customer_id,
        rule,
        occurred_on as latest_on,
        counted_from_on,
        lead(occurred_on) over (partition by customer_id, rule order by occurred_on) as next_on
    from day_ends
    where from_end = 1
),

behaviour as (
    select
        days.customer_id,
        days.score_on,
        spells.rule,
        spells.latest_on,
        {{ dbt.datediff('spells.latest_on', 'days.score_on', 'day') }} as age_days
    from {{ ref('lead_score_days') }} as days
    inner join spells
        on
            days.customer_id = spells.customer_id
            and days.score_on >= spells.latest_on
            and (spells.next_on is null or days.score_on < spells.next_on)
    inner join rules on spells.rule = rules.rule
    where
        spells.counted_from_on is not null
        and (
            rules.window_days is null
            or {{ dbt.datediff('spells.counted_from_on', 'days.score_on', 'day') }} < rules.window_days
        )
),

fit as (
    select
        days.customer_id,
        days.score_on,
        matched.rule,
        cast(null as date) as latest_on,
        cast(null as integer) as age_days
    from {{ ref('lead_score_days') }} as days
    inner join {{ ref('lead_score_fit') }} as matched on days.customer_id = matched.customer_id
),

holding as (
    select customer_id, score_on, rule, latest_on, age_days from behaviour
    union all
    select customer_id, score_on, rule, latest_on, age_days from fit
),

valued as (
    select
        holding.customer_id,
        holding.score_on,
        holding.rule,
        rules.rule_order,
        rules.rule_group,
        rules.kind,
        rules.points as full_points,
        case
            when rules.kind = 'fit' then rules.points
            else rules.points * power(0.5, cast(holding.age_days as {{ type_double() }}) / rules.half_life_days)
        end as exact_points,
        holding.latest_on,
        holding.age_days,
        rules.reason
    from holding
    inner join rules on holding.rule = rules.rule
)

select
    customer_id,
    score_on,
    rule,
    rule_order,
    rule_group,
    kind,
    full_points,
    cast(round(cast(exact_points as numeric(18, 6)), 2) as {{ type_double() }}) as points,
    latest_on,
    age_days,
    reason
from valued
