-- lead_stages: the stages of a lead, lowest first: the score stages with the total score each needs, then the CRM stages (crm/lead_status).
-- Generated from dbt_project/lead_scoring.yml: do not edit. Change the rules there, then run
-- `tideline leads build` (make test fails while this file is stale). docs/leads.md explains it.
select cast('raw_lead' as {{ dbt.type_string() }}) as lead_stage, 1 as stage_order, cast(null as {{ type_double() }}) as min_score, cast('score' as {{ dbt.type_string() }}) as source
union all
select cast('nurtured' as {{ dbt.type_string() }}), 2, cast(15 as {{ type_double() }}), cast('score' as {{ dbt.type_string() }})
union all
select cast('marketing_qualified' as {{ dbt.type_string() }}), 3, cast(40 as {{ type_double() }}), cast('score' as {{ dbt.type_string() }})
union all
select cast('sales_accepted' as {{ dbt.type_string() }}), 4, cast(null as {{ type_double() }}), cast('crm' as {{ dbt.type_string() }})
union all
select cast('opportunity' as {{ dbt.type_string() }}), 5, cast(null as {{ type_double() }}), cast('crm' as {{ dbt.type_string() }})
union all
select cast('deal' as {{ dbt.type_string() }}), 6, cast(null as {{ type_double() }}), cast('crm' as {{ dbt.type_string() }})
union all
select cast('lost' as {{ dbt.type_string() }}), 7, cast(null as {{ type_double() }}), cast('crm' as {{ dbt.type_string() }})
