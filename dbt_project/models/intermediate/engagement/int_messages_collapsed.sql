-- One row per message-mode ledger key (the delivery ledger's idempotency key): its latest
-- status as of the as-of date and when it was planned, sent or held out. Message-mode
-- ledger rows are those with a channel and a campaign whose sync is not known to be of
-- another mode (a sync that crashed before writing its sync_runs row still counts).
with ledger as (
    select * from {{ ref('stg_tideline_sync__delivery_log') }}
    where recorded_at < {{ as_of_cutoff() }} and not is_test  -- test sends are not performance
),

syncs as (
    select
        sync_key,
        max(segment) as segment,
        max(mode) as sync_mode
    from {{ ref('stg_tideline_sync__sync_runs') }}
    group by sync_key
),

message_events as (
    select ledger.*
    from ledger
    left join syncs on ledger.sync_key = syncs.sync_key
    where
        ledger.channel is not null
        and ledger.campaign is not null
        and coalesce(syncs.sync_mode, 'message') = 'message'
),

ranked as (
    select
        *,
        row_number() over (partition by message_key order by seq desc) as recency
    from message_events
),

timings as (
    select
        message_key,
        min(recorded_at) as planned_at,
        min(case when status = 'sent' then recorded_at end) as sent_at,
        min(case when status = 'holdout' then recorded_at end) as held_out_at,
        max(variant) as any_variant,
        max(launch_stage) as any_launch_stage
    from message_events
    group by message_key
),

latest as (
    select * from ranked
    where recency = 1
),

final as (
    select
        latest.message_key,
        latest.sync_key,
        syncs.segment,
        latest.campaign,
        latest.channel,
        coalesce(latest.variant, timings.any_variant) as variant,
        coalesce(latest.launch_stage, timings.any_launch_stage) as launch_stage,
        latest.customer_id,
        latest.content_version,
        latest.status,
        case when latest.status in ('skipped', 'deferred', 'dead_letter') then latest.reason end as skip_reason,
        latest.status = 'sent' as is_sent,
        latest.status = 'holdout' as is_holdout,
        latest.status in ('failed', 'dead_letter') as is_failed,
        timings.planned_at,
        case when latest.status = 'sent' then timings.sent_at end as sent_at,
        case
            when latest.status = 'sent' then timings.sent_at
            when latest.status = 'holdout' then timings.held_out_at
        end as exposed_at,
        latest.recorded_at as status_at
    from latest
    inner join timings on latest.message_key = timings.message_key
    left join syncs on latest.sync_key = syncs.sync_key
)

select * from final
