-- lead_stages: the score stages of a lead, lowest first, with the total score each needs.
-- Generated from dbt_project/lead_scoring.yml: do not edit. Change the rules there, then run
-- `tideline leads build` (make test fails while this file is stale). docs/leads.md explains it.
select cast('raw_lead' as varchar) as lead_stage, 1 as stage_order, cast(null as double precision) as min_score
union all
select cast('nurtured' as varchar), 2, cast(15 as double precision)
union all
select cast('marketing_qualified' as varchar), 3, cast(40 as double precision)
