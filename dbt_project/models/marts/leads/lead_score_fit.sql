-- lead_score_fit: one row per customer and fit rule whose condition holds on the as-of date.
-- Generated from dbt_project/lead_scoring.yml: do not edit. Change the rules there, then run
-- `tideline leads build` (make test fails while this file is stale). docs/leads.md explains it.
-- reachable_by_email: Consented to email
-- noqa: disable=AL01,AL09,LT05,LT14
select c.customer_id, cast('reachable_by_email' as {{ dbt.type_string() }}) as rule
from {{ ref('dim_customers') }} as c
where exists (select 1 from {{ ref('dim_customers') }} d1 where d1.customer_id = c.customer_id and d1.email_opt_in)
-- noqa: enable=all
union all
-- core_market: Lives in a core market
-- noqa: disable=AL01,AL09,LT05,LT14
select c.customer_id, cast('core_market' as {{ dbt.type_string() }}) as rule
from {{ ref('dim_customers') }} as c
where exists (select 1 from {{ ref('dim_customers') }} r1 where r1.customer_id = c.customer_id and r1.country in ('DE', 'AT', 'CH', 'NL', 'FR'))
-- noqa: enable=all
union all
-- recent_signup: Signed up in the last 30 days
-- noqa: disable=AL01,AL09,LT05,LT14
select c.customer_id, cast('recent_signup' as {{ dbt.type_string() }}) as rule
from {{ ref('dim_customers') }} as c
where exists (select 1 from {{ ref('dim_customers') }} r1 where r1.customer_id = c.customer_id and r1.signed_up_at >= cast({{ dbt.dateadd('day', -30, as_of_cutoff()) }} as timestamp) and r1.signed_up_at < {{ as_of_cutoff() }})
-- noqa: enable=all
