{#- Incremental (macros/incremental.sql): the pre-hook deletes the rows of landing files that changed
    since the last build, every row sharing an event_id with them (which duplicate is first may have
    moved) and rows now erased; the landing rows the table then lacks are parsed and ranked again. -#}
{{ config(
    materialized=incremental_materialization(),
    incremental_strategy="append",
    pre_hook=[
        "{{ incremental_state_create() }}",
        "{{ landing_incremental_delete('events', source('events', 'events'),
            not_erased(customer_id='customer_id', anonymous_id='anonymous_id'),
            key='event_id', landing_key='event_id') }}",
    ],
    post_hook=["{{ incremental_state_clear() }}", "{{ incremental_state_record() }}"],
) }}
with source as (
    select landing_rows.* from {{ source('events', 'events') }} as landing_rows
    where {{ landing_row_not_built('landing_rows') }}
),

parsed as (
    select
        _file,
        _row,
        {{ nullif_blank('event_id') }} as event_id,
        lower({{ nullif_blank('event_type') }}) as event_type,
        {{ parse_timestamp('occurred_at') }} as occurred_at,
        {{ nullif_blank('anonymous_id') }} as anonymous_id,
        {{ nullif_blank('customer_id') }} as customer_id,
        {{ nullif_blank('session_id') }} as session_id,
        {{ nullif_blank('product_id') }} as product_id,
        {{ nullif_blank('url') }} as url,
        lower({{ nullif_blank('utm_source') }}) as utm_source,
        lower({{ nullif_blank('utm_medium') }}) as utm_medium,
        lower({{ nullif_blank('utm_campaign') }}) as utm_campaign,
        event_type as raw__event_type,
        occurred_at as raw__occurred_at,
        anonymous_id as raw__anonymous_id
    from source
),

checked as (
    select
        *,
        {{ required_issue('raw__event_type', 'event_type') }} as issue__event_type,
        {{ timestamp_issue('raw__occurred_at', 'occurred_at', 'occurred_at') }} as issue__occurred_at,
        case
            when anonymous_id is null and customer_id is null
                then 'neither anonymous_id nor customer_id is set'
        end as issue__anonymous_id
    from parsed
),

flagged as (
    select
        *,
        coalesce(issue__event_type, issue__occurred_at, issue__anonymous_id) is not null as _invalid
    from checked
),

ranked as (
    select
        *,
        case
            when not _invalid and event_id is not null
                then row_number() over (partition by _invalid, event_id order by _file, _row)
        end as _version_rank
    from flagged
)

select
    _file,
    _row,
    coalesce(event_id, 'row:' || _file || ':' || cast(_row as {{ dbt.type_string() }})) as event_id,
    event_type,
    occurred_at,
    anonymous_id,
    customer_id,
    session_id,
    product_id,
    url,
    utm_source,
    utm_medium,
    utm_campaign,
    raw__event_type,
    raw__occurred_at,
    raw__anonymous_id,
    issue__event_type,
    issue__occurred_at,
    issue__anonymous_id,
    case when _version_rank > 1 then 'duplicate event_id "' || event_id || '": first occurrence kept' end
        as issue__duplicate,
    _invalid or coalesce(_version_rank > 1, false) as _rejected
from ranked
where {{ not_erased(customer_id='customer_id', anonymous_id='anonymous_id') }}
