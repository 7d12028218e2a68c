{{ config(materialized="table") }}
{#- Every landing lead status row, typed, with the reason each field is unusable. The row is
    rejected without a customer_id, with a stage that is not a CRM stage, or without a usable
    changed_at; an empty staff_id is fine. A status of an erased customer is left out here. -#}
with source as (
    select * from {{ source('crm', 'crm_lead_status') }}
),

parsed as (
    select
        _file,
        _row,
        {{ nullif_blank('customer_id') }} as customer_id,
        lower({{ nullif_blank('stage') }}) as crm_stage,
        {{ parse_timestamp('changed_at') }} as changed_at,
        {{ nullif_blank('staff_id') }} as staff_id,
        customer_id as raw__customer_id,
        stage as raw__stage,
        changed_at as raw__changed_at
    from source
),

checked as (
    select
        *,
        {{ required_issue('raw__customer_id', 'customer_id') }} as issue__customer_id,
        case
            when crm_stage is null or crm_stage not in ('sales_accepted', 'opportunity', 'deal', 'lost')
                then
                    'stage "' || coalesce(raw__stage, '')
                    || '" is not one of sales_accepted, opportunity, deal, lost'
        end as issue__stage,
        {{ timestamp_issue('raw__changed_at', 'changed_at', 'changed_at') }} as issue__changed_at
    from parsed
)

select
    _file,
    _row,
    customer_id,
    crm_stage,
    changed_at,
    staff_id,
    raw__customer_id,
    raw__stage,
    raw__changed_at,
    issue__customer_id,
    issue__stage,
    issue__changed_at,
    coalesce(issue__customer_id, issue__stage, issue__changed_at) is not null as _rejected
from checked
where {{ not_erased(customer_id='customer_id') }}
