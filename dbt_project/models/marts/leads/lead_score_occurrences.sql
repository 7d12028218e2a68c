-- lead_score_occurrences: one row per event or message satisfying a behaviour rule, before the as-of cutoff.
-- Generated from dbt_project/lead_scoring.yml: do not edit. Change the rules there, then run
-- `tideline leads build` (make test fails while this file is stale). docs/leads.md explains it.
-- viewed_pricing: Viewed pricing
-- noqa: disable=AL01,AL09,LT05,LT14
select e.customer_id, cast('viewed_pricing' as {{ dbt.type_string() }}) as rule, e.occurred_at, e.event_id as occurrence_id
from {{ ref('int_events_stitched') }} as e
where e.customer_id is not null and e.occurred_at < {{ as_of_cutoff() }} and (e.event_type in ('page_view')) and (coalesce(e.url = 'https://shop.example.com/pricing', false))
-- noqa: enable=all
union all
-- registered_webinar: Registered for a webinar
-- noqa: disable=AL01,AL09,LT05,LT14
select e.customer_id, cast('registered_webinar' as {{ dbt.type_string() }}) as rule, e.occurred_at, e.event_id as occurrence_id
from {{ ref('int_events_stitched') }} as e
where e.customer_id is not null and e.occurred_at < {{ as_of_cutoff() }} and (e.event_type in ('form_submit')) and (coalesce(e.url = 'https://shop.example.com/webinar', false))
-- noqa: enable=all
union all
-- carted: Added to cart
-- noqa: disable=AL01,AL09,LT05,LT14
select e.customer_id, cast('carted' as {{ dbt.type_string() }}) as rule, e.occurred_at, e.event_id as occurrence_id
from {{ ref('int_events_stitched') }} as e
where e.customer_id is not null and e.occurred_at < {{ as_of_cutoff() }} and (e.event_type in ('add_to_cart', 'checkout_started'))
-- noqa: enable=all
union all
-- visited_recently: Visited the shop
-- noqa: disable=AL01,AL09,LT05,LT14
select e.customer_id, cast('visited_recently' as {{ dbt.type_string() }}) as rule, e.occurred_at, e.event_id as occurrence_id
from {{ ref('int_events_stitched') }} as e
where e.customer_id is not null and e.occurred_at < {{ as_of_cutoff() }} and (e.event_type in ('page_view', 'product_view', 'app_open', 'login'))
-- noqa: enable=all
union all
-- browsed_products: Viewed 3+ products in 14 days
-- noqa: disable=AL01,AL09,LT05,LT14
select e.customer_id, cast('browsed_products' as {{ dbt.type_string() }}) as rule, e.occurred_at, e.event_id as occurrence_id
from {{ ref('int_events_stitched') }} as e
where e.customer_id is not null and e.occurred_at < {{ as_of_cutoff() }} and (e.event_type in ('product_view'))
-- noqa: enable=all
union all
-- submitted_form: Submitted a form
-- noqa: disable=AL01,AL09,LT05,LT14
select e.customer_id, cast('submitted_form' as {{ dbt.type_string() }}) as rule, e.occurred_at, e.event_id as occurrence_id
from {{ ref('int_events_stitched') }} as e
where e.customer_id is not null and e.occurred_at < {{ as_of_cutoff() }} and (e.event_type in ('form_submit'))
-- noqa: enable=all
union all
-- clicked_email: Clicked an email
-- noqa: disable=AL01,AL09,LT05,LT14
select x.customer_id, cast('clicked_email' as {{ dbt.type_string() }}) as rule, x.occurred_at as occurred_at, x.event_id as occurrence_id
from {{ ref('fct_message_events') }} as x
where x.customer_id is not null and x.occurred_at < {{ as_of_cutoff() }} and (x.event_type = 'clicked') and (x.is_human)
-- noqa: enable=all
union all
-- unsubscribed: Unsubscribed from a campaign
-- noqa: disable=AL01,AL09,LT05,LT14
select x.customer_id, cast('unsubscribed' as {{ dbt.type_string() }}) as rule, x.occurred_at as occurred_at, x.event_id as occurrence_id
from {{ ref('fct_message_events') }} as x
where x.customer_id is not null and x.occurred_at < {{ as_of_cutoff() }} and (x.event_type = 'unsubscribed')
-- noqa: enable=all
