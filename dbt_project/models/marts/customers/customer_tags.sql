-- customer_tags: every rule's tags, one row per customer and tag on the as-of date.
-- Generated from dbt_project/tags.yml: do not edit. Change the rules there, then run
-- `tideline tags build` (make test fails while this file is stale).
select customer_id, tag, tagged_at, reason, as_of_date from {{ ref('customer_tags_rules') }}
union all
select customer_id, tag, tagged_at, reason, as_of_date from {{ ref('customer_tags_scored') }}
