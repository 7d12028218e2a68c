{#- Incremental (macros/incremental.sql): every row depends on its landing row alone, so the
    pre-hook deletes the rows of landing files that changed since the last build (the receiver's
    appended files among them) and rows now erased, and the landing rows the table then lacks are
    parsed again. -#}
{{ config(
    materialized=incremental_materialization(),
    incremental_strategy="append",
    pre_hook=[
        "{{ incremental_state_create() }}",
        "{{ landing_incremental_delete('engagement_events', source('engagement', 'engagement_events'),
            not_erased(customer_id='customer_id')) }}",
    ],
    post_hook=["{{ incremental_state_clear() }}", "{{ incremental_state_record() }}"],
) }}
{#- Every landing engagement event row, typed, with the reason each field is unusable.
    A row without a usable event_id, event_type or occurred_at is `_rejected`; unusable
    optional fields are cleared and the row kept. A re-delivered event (same event_id) is
    not an issue: fct_message_events counts it once. -#}
with source as (
    select landing_rows.* from {{ source('engagement', 'engagement_events') }} as landing_rows
    where {{ landing_row_not_built('landing_rows') }}
),

parsed as (
    select
        _file,
        _row,
        {{ nullif_blank('event_id') }} as event_id,
        lower({{ nullif_blank('event_type') }}) as event_type,
        {{ parse_timestamp('occurred_at') }} as occurred_at,
        {{ parse_timestamp('received_at') }} as received_at_parsed,
        lower({{ nullif_blank('source') }}) as event_source,
        lower({{ nullif_blank('provider') }}) as provider,
        lower({{ nullif_blank('message_key') }}) as message_key,
        {{ nullif_blank('customer_id') }} as customer_id,
        {{ nullif_blank('campaign') }} as campaign,
        {{ nullif_blank('variant') }} as variant,
        {{ nullif_blank('segment') }} as segment,
        lower({{ nullif_blank('channel') }}) as channel_raw,
        {{ parse_integer('link_index') }} as link_index_parsed,
        {{ nullif_blank('url') }} as url,
        {{ nullif_blank('user_agent') }} as user_agent,
        lower({{ nullif_blank('bounce_type') }}) as bounce_type_raw,
        event_id as raw__event_id,
        event_type as raw__event_type,
        occurred_at as raw__occurred_at,
        received_at as raw__received_at,
        channel as raw__channel,
        link_index as raw__link_index,
        bounce_type as raw__bounce_type
    from source
),

checked as (
    select
        *,
        {{ required_issue('raw__event_id', 'event_id') }} as issue__event_id,
        case
            when event_type is null then 'event_type is empty'
            when event_type not in ('clicked', 'opened', 'unsubscribed', 'delivered', 'bounced', 'complained')
                then 'event_type "' || raw__event_type || '" is not one of clicked, opened, unsubscribed, delivered, bounced, complained'
        end as issue__event_type,
        {{ timestamp_issue('raw__occurred_at', 'occurred_at', 'occurred_at') }} as issue__occurred_at,
        case
            when {{ nullif_blank('raw__received_at') }} is not null and received_at_parsed is null
                then 'received_at "' || raw__received_at || '" is not a timestamp; cleared'
        end as issue__received_at,
        case
            when channel_raw is not null and channel_raw not in ('email', 'sms', 'push')
                then 'channel "' || raw__channel || '" is not one of email, sms, push; cleared'
        end as issue__channel,
        case
            when {{ nullif_blank('raw__link_index') }} is not null and link_index_parsed is null
                then 'link_index "' || raw__link_index || '" is not a whole number; cleared'
        end as issue__link_index,
        case
            when bounce_type_raw is not null and bounce_type_raw not in ('hard', 'soft')
                then 'bounce_type "' || raw__bounce_type || '" is not one of hard, soft; cleared'
        end as issue__bounce_type
    from parsed
),

final as (
    select
        _file,
        _row,
        event_id,
        event_type,
        occurred_at,
        case when issue__received_at is null then received_at_parsed end as received_at,
        event_source,
        provider,
        message_key,
        customer_id,
        campaign,
        variant,
        segment,
        case when issue__channel is null then channel_raw end as channel,
        case when issue__link_index is null then link_index_parsed end as link_index,
        url,
        user_agent,
        case when issue__bounce_type is null then bounce_type_raw end as bounce_type,
        raw__event_id,
        raw__event_type,
        raw__occurred_at,
        raw__received_at,
        raw__channel,
        raw__link_index,
        raw__bounce_type,
        issue__event_id,
        issue__event_type,
        issue__occurred_at,
        issue__received_at,
        issue__channel,
        issue__link_index,
        issue__bounce_type,
        coalesce(issue__event_id, issue__event_type, issue__occurred_at) is not null as _rejected
    from checked
)

select * from final
where {{ not_erased(customer_id='customer_id') }}
