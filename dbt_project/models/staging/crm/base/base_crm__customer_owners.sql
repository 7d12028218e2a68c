{{ config(materialized="table") }}
{#- Every landing customer-owner link, typed, with the reason each field is unusable. A row
    without customer_id or staff_id is rejected; a bad linked_at is cleared. Links of an erased
    customer are left out here, so they never reach customer_owners or the rejects report.
    Unknown customers and staff are reported by `rejects` and left out of customer_owners. -#}
with source as (
    select * from {{ source('crm', 'crm_customer_owners') }}
),

parsed as (
    select
        _file,
        _row,
        {{ nullif_blank('customer_id') }} as customer_id,
        {{ nullif_blank('staff_id') }} as staff_id,
        {{ parse_timestamp('linked_at') }} as linked_at,
        customer_id as raw__customer_id,
        staff_id as raw__staff_id,
        linked_at as raw__linked_at
    from source
),

checked as (
    select
        *,
        {{ required_issue('raw__customer_id', 'customer_id') }} as issue__customer_id,
        {{ required_issue('raw__staff_id', 'staff_id') }} as issue__staff_id,
        {{ timestamp_issue('raw__linked_at', 'linked_at', 'linked_at', required=false) }} as issue__linked_at
    from parsed
)

select
    _file,
    _row,
    customer_id,
    staff_id,
    linked_at,
    raw__customer_id,
    raw__staff_id,
    raw__linked_at,
    issue__customer_id,
    issue__staff_id,
    case when issue__linked_at is not null then issue__linked_at || '; cleared' end as issue__linked_at,
    coalesce(issue__customer_id, issue__staff_id) is not null as _rejected
from checked
where {{ not_erased(customer_id='customer_id') }}
