-- lead_stages: the stages of a lead, lowest first: the score stages with the total score each needs, then the CRM stages (crm/lead_status).
-- Generated from dbt_project/lead_scoring.yml: do not edit. Change the rules there, then run
-- `tideline leads build` (make test fails while this file is stale). docs/leads.md explains it.
select cast('raw_lead' as varchar) as lead_stage, 1 as stage_order, cast(null as double precision) as min_score, cast('score' as varchar) as source
union all
select cast('nurtured' as varchar), 2, cast(15 as double precision), cast('score' as varchar)
union all
select cast('marketing_qualified' as varchar), 3, cast(40 as double precision), cast('score' as varchar)
union all
select cast('sales_accepted' as varchar), 4, cast(null as double precision), cast('crm' as varchar)
union all
select cast('opportunity' as varchar), 5, cast(null as double precision), cast('crm' as varchar)
union all
select cast('deal' as varchar), 6, cast(null as double precision), cast('crm' as varchar)
union all
select cast('lost' as varchar), 7, cast(null as double precision), cast('crm' as varchar)
