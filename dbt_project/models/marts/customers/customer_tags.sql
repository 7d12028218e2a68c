-- customer_tags: every rule's tags and the tags journeys added, one row per customer and tag on the as-of date.
-- Generated from dbt_project/tags.yml: do not edit. Change the rules there, then run
-- `tideline tags build` (make test fails while this file is stale).
with rule_tags as (
    select customer_id, tag, tagged_at, reason, as_of_date from {{ ref('customer_tags_rules') }}
    union all
    select customer_id, tag, tagged_at, reason, as_of_date from {{ ref('customer_tags_scored') }}
),

journey_tag_changes as (
    select
        customer_id,
        tag,
        is_added,
        journey,
        changed_at,
        row_number() over (
            partition by customer_id, tag order by changed_at desc, case when is_added then 1 else 0 end
        ) as recency
    from {{ ref('stg_tideline_journeys__tag_changes') }}
    where changed_at < {{ as_of_cutoff() }}
),

journey_tags as (
    select
        changes.customer_id,
        changes.tag,
        changes.changed_at as tagged_at,
        'added by journey ' || changes.journey || ' on ' || cast(cast(changes.changed_at as date) as {{ dbt.type_string() }})
            as reason
    from journey_tag_changes as changes
    inner join {{ ref('dim_customers') }} as customers on changes.customer_id = customers.customer_id
    where
        changes.recency = 1
        and changes.is_added
        and not exists (
            select 1 from rule_tags
            where rule_tags.customer_id = changes.customer_id and rule_tags.tag = changes.tag
        )
)

select customer_id, tag, tagged_at, reason, as_of_date, 'rule' as source from rule_tags
union all
select customer_id, tag, tagged_at, reason, {{ as_of_date() }} as as_of_date, 'journey' as source
from journey_tags
