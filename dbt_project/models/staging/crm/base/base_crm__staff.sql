{{ config(materialized="table") }}
{#- Every landing staff row, typed, with the reason each field is unusable. Bad optional fields
    (email, handle, timezone, active, a manager_id naming the employee themself) are cleared and
    reported; the row is rejected only without a staff_id or as a duplicate (a later file's row,
    then a later row, wins). Whether manager_id names a known employee is checked in dim_staff,
    which sees every row. -#}
with source as (
    select * from {{ source('crm', 'crm_staff') }}
),

time_zones as (
    select time_zone from {{ ref('time_zones') }}
),

parsed as (
    select
        source._file,
        source._row,
        {{ nullif_blank('source.staff_id') }} as staff_id,
        {{ nullif_blank('source.name') }} as staff_name,
        {{ normalise_email('source.email') }} as email_normalised,
        {{ nullif_blank('source.manager_id') }} as manager_raw,
        {{ nullif_blank('source.handle') }} as handle_raw,
        {{ nullif_blank('source.team') }} as team,
        {{ nullif_blank('source.timezone') }} as timezone_raw,
        lower({{ nullif_blank('source.active') }}) as active_raw,
        source.staff_id as raw__staff_id,
        source.email as raw__email,
        source.manager_id as raw__manager_id,
        source.handle as raw__handle,
        source.timezone as raw__timezone,
        source.active as raw__active
    from source
),

classified as (
    select
        parsed.*,
        case
            when {{ regexp_like('parsed.handle_raw', '^https?://[^\\s/]+[^\\s]*$') }} then 'webhook'
            when {{ is_valid_email('lower(parsed.handle_raw)') }} then 'email'
        end as handle_kind,
        case
            when parsed.active_raw is null or parsed.active_raw in ('true', 't', 'yes', 'y', '1') then true
            when parsed.active_raw in ('false', 'f', 'no', 'n', '0') then false
        end as active_parsed,
        time_zones.time_zone is not null as timezone_known
    from parsed
    left join time_zones on parsed.timezone_raw = time_zones.time_zone
),

checked as (
    select
        *,
        {{ required_issue('raw__staff_id', 'staff_id') }} as issue__staff_id,
        case
            when email_normalised is not null and not {{ is_valid_email('email_normalised') }}
                then 'email is not a valid address; cleared'
        end as issue__email,
        case
            when manager_raw is not null and manager_raw = staff_id
                then 'manager_id "' || manager_raw || '" is the employee themself; cleared'
        end as issue__manager_id,
        case
            when handle_raw is not null and handle_kind is null
                then 'handle is neither an http(s) webhook URL nor an email address; cleared'
        end as issue__handle,
        case
            when timezone_raw is not null and not timezone_known
                then 'timezone "' || timezone_raw || '" is not an IANA time zone (e.g. Europe/Berlin); cleared'
        end as issue__timezone,
        case
            when active_parsed is null
                then 'active "' || raw__active || '" is not one of true, false; cleared (the employee counts as active)'
        end as issue__active
    from classified
),

ranked as (
    select
        *,
        case
            when issue__staff_id is null
                then row_number() over (partition by staff_id order by _file desc, _row desc)
        end as _version_rank,
        case
            when issue__staff_id is null
                then first_value(_file || ' row ' || cast(_row as {{ dbt.type_string() }}))
                    over (partition by staff_id order by _file desc, _row desc)
        end as _winner
    from checked
)

select
    _file,
    _row,
    staff_id,
    staff_name,
    case when issue__email is null then email_normalised end as email,
    case when issue__manager_id is null then manager_raw end as manager_id,
    case
        when handle_kind = 'email' then lower(handle_raw)
        when handle_kind = 'webhook' then handle_raw
    end as handle,
    handle_kind,
    team,
    case when timezone_known then timezone_raw end as time_zone,
    coalesce(active_parsed, true) as is_active,
    raw__staff_id,
    raw__email,
    raw__manager_id,
    raw__handle,
    raw__timezone,
    raw__active,
    issue__staff_id,
    issue__email,
    issue__manager_id,
    issue__handle,
    issue__timezone,
    issue__active,
    case
        when _version_rank > 1
            then 'duplicate staff_id "' || staff_id || '": superseded by ' || _winner
    end as issue__duplicate,
    issue__staff_id is not null or coalesce(_version_rank > 1, false) as _rejected
from ranked
