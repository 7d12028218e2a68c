-- tag_health: one row per tag rule, even when no customer has the tag.
-- Generated from dbt_project/tags.yml: do not edit. Change the rules there, then run
-- `tideline tags build` (make test fails while this file is stale).
with definitions as (
    select rules.tag, rules.description, rules.needs_scores
    from (
        values
        ('vip', 'Top spenders', false),
        ('high_potential', 'Young customers with large baskets', false),
        ('new_signup', 'Recently signed up', false),
        ('dormant', 'No purchase for a long time', false),
        ('at_risk', 'Slipping away', false),
        ('price_sensitive', 'Buys mostly with coupons', false),
        ('cart_abandoner', 'Left a cart or checkout', false),
        ('one_time_buyer', 'Bought exactly once', false),
        ('high_value_at_risk', 'Valuable customers likely to leave', true)
    ) as rules (tag, description, needs_scores)
),

counts as (
    select tag, count(*) as customers_tagged, min(tagged_at) as oldest_tagged_at, max(tagged_at) as newest_tagged_at
    from {{ ref('customer_tags') }}
    group by tag
),

population as (
    select count(*) as customers from {{ ref('dim_customers') }}
)

select
    definitions.tag,
    definitions.description,
    definitions.needs_scores,
    coalesce(counts.customers_tagged, 0) as customers_tagged,
    case
        when population.customers > 0
            then {{ round_to(share('coalesce(counts.customers_tagged, 0)', 'population.customers'), 4) }}
        else 0
    end
        as coverage_share,
    counts.oldest_tagged_at,
    counts.newest_tagged_at,
    {{ days_between('counts.newest_tagged_at', as_of_date()) }} as days_since_newest,
    {{ as_of_date() }} as as_of_date
from definitions
cross join population
left join counts on definitions.tag = counts.tag
