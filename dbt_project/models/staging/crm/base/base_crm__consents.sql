{{ config(materialized="table") }}
with source as (
    select * from {{ source('crm', 'crm_consents') }}
),

parsed as (
    select
        _file,
        _row,
        {{ nullif_blank('customer_id') }} as customer_id,
        lower({{ nullif_blank('channel') }}) as channel,
        lower({{ nullif_blank('status') }}) as status_raw,
        {{ parse_timestamp('consented_at') }} as consented_at,
        lower({{ nullif_blank('source') }}) as consent_source,
        customer_id as raw__customer_id,
        channel as raw__channel,
        status as raw__status,
        consented_at as raw__consented_at
    from source
),

checked as (
    select
        *,
        case
            when status_raw in ('granted', 'opt_in', 'opt-in', 'optin', 'subscribed', 'true', 'yes', '1') then true
            when status_raw in ('revoked', 'opt_out', 'opt-out', 'optout', 'unsubscribed', 'false', 'no', '0')
                then false
        end as is_granted,
        {{ required_issue('raw__customer_id', 'customer_id') }} as issue__customer_id,
        case
            when channel is null or channel not in ('email', 'sms', 'push')
                then 'channel "' || coalesce(raw__channel, '') || '" is not one of email, sms, push'
        end
            as issue__channel,
        {{ timestamp_issue('raw__consented_at', 'consented_at', 'consented_at') }} as issue__consented_at
    from parsed
)

select
    _file,
    _row,
    customer_id,
    channel,
    is_granted,
    consented_at,
    consent_source,
    raw__customer_id,
    raw__channel,
    raw__status,
    raw__consented_at,
    issue__customer_id,
    issue__channel,
    case
        when is_granted is null
            then 'status "' || coalesce(raw__status, '') || '" is not one of granted, revoked'
    end as issue__status,
    issue__consented_at,
    coalesce(issue__customer_id, issue__channel, issue__consented_at) is not null or is_granted is null
        as _rejected
from checked
where {{ not_erased(customer_id='customer_id') }}
