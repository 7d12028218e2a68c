-- One row per tag defined in seed tag_definitions, even when no customer has it.
with definitions as (
    select tag, description from {{ ref('tag_definitions') }}
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
    coalesce(counts.customers_tagged, 0) as customers_tagged,
    case
        when population.customers > 0
            then round(1.0 * coalesce(counts.customers_tagged, 0) / population.customers, 4)
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
