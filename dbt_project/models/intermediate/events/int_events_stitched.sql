-- Behaviour events up to the as-of date with the resolved customer: directly from
-- the event's customer_id, else through its stitched anonymous id (also for events
-- before the signup). Events of never-identified visitors keep a null customer_id.
-- Incremental (macros/incremental.sql, events_stitched_incremental_delete): the pre-hook deletes
-- the events whose landing file, duplicate, as-of window, erasure or resolution changed; the events
-- the table then lacks are stitched again here.
-- depends_on: {{ ref('stg_tideline_privacy__erased_identities') }}
{{ config(
    materialized=incremental_materialization(),
    incremental_strategy="append",
    pre_hook=[
        "{{ incremental_state_create() }}",
        "{{ events_stitched_upgrade('_file') }}",
        "{{ events_stitched_upgrade('source_customer_id') }}",
        "{{ events_stitched_incremental_delete() }}",
    ],
    post_hook=["{{ incremental_state_clear() }}", "{{ incremental_state_record() }}"],
) }}
select
    events.event_id,
    events.event_type,
    events.occurred_at,
    events.anonymous_id,
    coalesce(direct.customer_id, stitched.customer_id) as customer_id,
    direct.customer_id is null and stitched.customer_id is not null as is_stitched,
    events.session_id,
    events.product_id,
    events.url,
    events.utm_source,
    events.utm_medium,
    events.utm_campaign,
    events.customer_id as source_customer_id,
    events._file
from {{ ref('stg_events__events') }} as events
left join {{ ref('int_accounts_resolved') }} as direct on events.customer_id = direct.account_id
left join {{ ref('int_anonymous_ids_stitched') }} as stitched on events.anonymous_id = stitched.anonymous_id
where events.occurred_at < {{ as_of_cutoff() }}
{%- if is_incremental() %}
    and not exists (select 1 from {{ this }} as built where built.event_id = events.event_id)
{%- endif %}
