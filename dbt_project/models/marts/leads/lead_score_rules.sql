-- lead_score_rules: one row per lead scoring rule, in file order.
-- Generated from dbt_project/lead_scoring.yml: do not edit. Change the rules there, then run
-- `tideline leads build` (make test fails while this file is stale). docs/leads.md explains it.
select
    cast('reachable_by_email' as varchar) as rule,
    1 as rule_order,
    cast('fit' as varchar) as rule_group,
    cast('fit' as varchar) as kind,
    cast(10 as double precision) as points,
    cast(25 as double precision) as group_cap,
    cast(null as integer) as half_life_days,
    cast(null as integer) as window_days,
    1 as min_count,
    cast('Consented to email' as varchar) as reason,
    cast('Consented to email' as varchar) as description
union all
select
    cast('core_market' as varchar) as rule,
    2 as rule_order,
    cast('fit' as varchar) as rule_group,
    cast('fit' as varchar) as kind,
    cast(10 as double precision) as points,
    cast(25 as double precision) as group_cap,
    cast(null as integer) as half_life_days,
    cast(null as integer) as window_days,
    1 as min_count,
    cast('Lives in a core market' as varchar) as reason,
    cast('Lives in a core market' as varchar) as description
union all
select
    cast('recent_signup' as varchar) as rule,
    3 as rule_order,
    cast('fit' as varchar) as rule_group,
    cast('fit' as varchar) as kind,
    cast(5 as double precision) as points,
    cast(25 as double precision) as group_cap,
    cast(null as integer) as half_life_days,
    cast(null as integer) as window_days,
    1 as min_count,
    cast('Signed up in the last 30 days' as varchar) as reason,
    cast('Signed up in the last 30 days' as varchar) as description
union all
select
    cast('viewed_pricing' as varchar) as rule,
    4 as rule_order,
    cast('intent' as varchar) as rule_group,
    cast('behaviour' as varchar) as kind,
    cast(25 as double precision) as points,
    cast(50 as double precision) as group_cap,
    cast(10 as integer) as half_life_days,
    cast(60 as integer) as window_days,
    1 as min_count,
    cast('Viewed pricing' as varchar) as reason,
    cast('Viewed pricing' as varchar) as description
union all
select
    cast('registered_webinar' as varchar) as rule,
    5 as rule_order,
    cast('intent' as varchar) as rule_group,
    cast('behaviour' as varchar) as kind,
    cast(25 as double precision) as points,
    cast(50 as double precision) as group_cap,
    cast(10 as integer) as half_life_days,
    cast(60 as integer) as window_days,
    1 as min_count,
    cast('Registered for a webinar' as varchar) as reason,
    cast('Registered for a webinar' as varchar) as description
union all
select
    cast('carted' as varchar) as rule,
    6 as rule_order,
    cast('intent' as varchar) as rule_group,
    cast('behaviour' as varchar) as kind,
    cast(15 as double precision) as points,
    cast(50 as double precision) as group_cap,
    cast(10 as integer) as half_life_days,
    cast(30 as integer) as window_days,
    1 as min_count,
    cast('Added to cart' as varchar) as reason,
    cast('Added to cart' as varchar) as description
union all
select
    cast('visited_recently' as varchar) as rule,
    7 as rule_order,
    cast('engagement' as varchar) as rule_group,
    cast('behaviour' as varchar) as kind,
    cast(15 as double precision) as points,
    cast(25 as double precision) as group_cap,
    cast(14 as integer) as half_life_days,
    cast(30 as integer) as window_days,
    1 as min_count,
    cast('Visited the shop' as varchar) as reason,
    cast('Visited the shop' as varchar) as description
union all
select
    cast('browsed_products' as varchar) as rule,
    8 as rule_order,
    cast('engagement' as varchar) as rule_group,
    cast('behaviour' as varchar) as kind,
    cast(10 as double precision) as points,
    cast(25 as double precision) as group_cap,
    cast(14 as integer) as half_life_days,
    cast(14 as integer) as window_days,
    3 as min_count,
    cast('Viewed 3+ products in 14 days' as varchar) as reason,
    cast('Viewed 3+ products in 14 days' as varchar) as description
union all
select
    cast('submitted_form' as varchar) as rule,
    9 as rule_order,
    cast('engagement' as varchar) as rule_group,
    cast('behaviour' as varchar) as kind,
    cast(10 as double precision) as points,
    cast(25 as double precision) as group_cap,
    cast(14 as integer) as half_life_days,
    cast(30 as integer) as window_days,
    1 as min_count,
    cast('Submitted a form' as varchar) as reason,
    cast('Submitted a form' as varchar) as description
union all
select
    cast('clicked_email' as varchar) as rule,
    10 as rule_order,
    cast('engagement' as varchar) as rule_group,
    cast('behaviour' as varchar) as kind,
    cast(10 as double precision) as points,
    cast(25 as double precision) as group_cap,
    cast(14 as integer) as half_life_days,
    cast(30 as integer) as window_days,
    1 as min_count,
    cast('Clicked an email' as varchar) as reason,
    cast('Clicked an email' as varchar) as description
union all
select
    cast('unsubscribed' as varchar) as rule,
    11 as rule_order,
    cast('engagement' as varchar) as rule_group,
    cast('behaviour' as varchar) as kind,
    cast(-20 as double precision) as points,
    cast(25 as double precision) as group_cap,
    cast(14 as integer) as half_life_days,
    cast(90 as integer) as window_days,
    1 as min_count,
    cast('Unsubscribed from a campaign' as varchar) as reason,
    cast('Unsubscribed from a campaign' as varchar) as description
