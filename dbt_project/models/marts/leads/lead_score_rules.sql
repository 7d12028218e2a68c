-- lead_score_rules: one row per lead scoring rule, in file order.
-- Generated from dbt_project/lead_scoring.yml: do not edit. Change the rules there, then run
-- `tideline leads build` (make test fails while this file is stale). docs/leads.md explains it.
select
    cast('reachable_by_email' as {{ dbt.type_string() }}) as rule,
    1 as rule_order,
    cast('fit' as {{ dbt.type_string() }}) as rule_group,
    cast('fit' as {{ dbt.type_string() }}) as kind,
    cast(10 as {{ type_double() }}) as points,
    cast(25 as {{ type_double() }}) as group_cap,
    cast(null as integer) as half_life_days,
    cast(null as integer) as window_days,
    1 as min_count,
    cast('Consented to email' as {{ dbt.type_string() }}) as reason,
    cast('Consented to email' as {{ dbt.type_string() }}) as description
union all
select
    cast('core_market' as {{ dbt.type_string() }}) as rule,
    2 as rule_order,
    cast('fit' as {{ dbt.type_string() }}) as rule_group,
    cast('fit' as {{ dbt.type_string() }}) as kind,
    cast(10 as {{ type_double() }}) as points,
    cast(25 as {{ type_double() }}) as group_cap,
    cast(null as integer) as half_life_days,
    cast(null as integer) as window_days,
    1 as min_count,
    cast('Lives in a core market' as {{ dbt.type_string() }}) as reason,
    cast('Lives in a core market' as {{ dbt.type_string() }}) as description
union all
select
    cast('recent_signup' as {{ dbt.type_string() }}) as rule,
    3 as rule_order,
    cast('fit' as {{ dbt.type_string() }}) as rule_group,
    cast('fit' as {{ dbt.type_string() }}) as kind,
    cast(5 as {{ type_double() }}) as points,
    cast(25 as {{ type_double() }}) as group_cap,
    cast(null as integer) as half_life_days,
    cast(null as integer) as window_days,
    1 as min_count,
    cast('Signed up in the last 30 days' as {{ dbt.type_string() }}) as reason,
    cast('Signed up in the last 30 days' as {{ dbt.type_string() }}) as description
union all
select
    cast('viewed_pricing' as {{ dbt.type_string() }}) as rule,
    4 as rule_order,
    cast('intent' as {{ dbt.type_string() }}) as rule_group,
    cast('behaviour' as {{ dbt.type_string() }}) as kind,
    cast(25 as {{ type_double() }}) as points,
    cast(50 as {{ type_double() }}) as group_cap,
    cast(10 as integer) as half_life_days,
    cast(60 as integer) as window_days,
    1 as min_count,
    cast('Viewed pricing' as {{ dbt.type_string() }}) as reason,
    cast('Viewed pricing' as {{ dbt.type_string() }}) as description
union all
select
    cast('registered_webinar' as {{ dbt.type_string() }}) as rule,
    5 as rule_order,
    cast('intent' as {{ dbt.type_string() }}) as rule_group,
    cast('behaviour' as {{ dbt.type_string() }}) as kind,
    cast(25 as {{ type_double() }}) as points,
    cast(50 as {{ type_double() }}) as group_cap,
    cast(10 as integer) as half_life_days,
    cast(60 as integer) as window_days,
    1 as min_count,
    cast('Registered for a webinar' as {{ dbt.type_string() }}) as reason,
    cast('Registered for a webinar' as {{ dbt.type_string() }}) as description
union all
select
    cast('carted' as {{ dbt.type_string() }}) as rule,
    6 as rule_order,
    cast('intent' as {{ dbt.type_string() }}) as rule_group,
    cast('behaviour' as {{ dbt.type_string() }}) as kind,
    cast(15 as {{ type_double() }}) as points,
    cast(50 as {{ type_double() }}) as group_cap,
    cast(10 as integer) as half_life_days,
    cast(30 as integer) as window_days,
    1 as min_count,
    cast('Added to cart' as {{ dbt.type_string() }}) as reason,
    cast('Added to cart' as {{ dbt.type_string() }}) as description
union all
select
    cast('visited_recently' as {{ dbt.type_string() }}) as rule,
    7 as rule_order,
    cast('engagement' as {{ dbt.type_string() }}) as rule_group,
    cast('behaviour' as {{ dbt.type_string() }}) as kind,
    cast(15 as {{ type_double() }}) as points,
    cast(25 as {{ type_double() }}) as group_cap,
    cast(14 as integer) as half_life_days,
    cast(30 as integer) as window_days,
    1 as min_count,
    cast('Visited the shop' as {{ dbt.type_string() }}) as reason,
    cast('Visited the shop' as {{ dbt.type_string() }}) as description
union all
select
    cast('browsed_products' as {{ dbt.type_string() }}) as rule,
    8 as rule_order,
    cast('engagement' as {{ dbt.type_string() }}) as rule_group,
    cast('behaviour' as {{ dbt.type_string() }}) as kind,
    cast(10 as {{ type_double() }}) as points,
    cast(25 as {{ type_double() }}) as group_cap,
    cast(14 as integer) as half_life_days,
    cast(14 as integer) as window_days,
    3 as min_count,
    cast('Viewed 3+ products in 14 days' as {{ dbt.type_string() }}) as reason,
    cast('Viewed 3+ products in 14 days' as {{ dbt.type_string() }}) as description
union all
select
    cast('submitted_form' as {{ dbt.type_string() }}) as rule,
    9 as rule_order,
    cast('engagement' as {{ dbt.type_string() }}) as rule_group,
    cast('behaviour' as {{ dbt.type_string() }}) as kind,
    cast(10 as {{ type_double() }}) as points,
    cast(25 as {{ type_double() }}) as group_cap,
    cast(14 as integer) as half_life_days,
    cast(30 as integer) as window_days,
    1 as min_count,
    cast('Submitted a form' as {{ dbt.type_string() }}) as reason,
    cast('Submitted a form' as {{ dbt.type_string() }}) as description
union all
select
    cast('clicked_email' as {{ dbt.type_string() }}) as rule,
    10 as rule_order,
    cast('engagement' as {{ dbt.type_string() }}) as rule_group,
    cast('behaviour' as {{ dbt.type_string() }}) as kind,
    cast(10 as {{ type_double() }}) as points,
    cast(25 as {{ type_double() }}) as group_cap,
    cast(14 as integer) as half_life_days,
    cast(30 as integer) as window_days,
    1 as min_count,
    cast('Clicked an email' as {{ dbt.type_string() }}) as reason,
    cast('Clicked an email' as {{ dbt.type_string() }}) as description
union all
select
    cast('unsubscribed' as {{ dbt.type_string() }}) as rule,
    11 as rule_order,
    cast('engagement' as {{ dbt.type_string() }}) as rule_group,
    cast('behaviour' as {{ dbt.type_string() }}) as kind,
    cast(-20 as {{ type_double() }}) as points,
    cast(25 as {{ type_double() }}) as group_cap,
    cast(14 as integer) as half_life_days,
    cast(90 as integer) as window_days,
    1 as min_count,
    cast('Unsubscribed from a campaign' as {{ dbt.type_string() }}) as reason,
    cast('Unsubscribed from a campaign' as {{ dbt.type_string() }}) as description
