-- Grain: one row per message-mode delivery ledger key (latest status as of the as-of
-- date), including holdout, skipped and failed messages.
with messages as (
    select * from {{ ref('int_messages_collapsed') }}
),

final as (
    select
        message_key,
        sync_key,
        segment,
        campaign,
        channel,
        variant,
        launch_stage,
        customer_id,
        content_version,
        status,
        skip_reason,
        is_sent,
        is_holdout,
        is_failed,
        planned_at,
        sent_at,
        exposed_at,
        cast(exposed_at as date) as send_date,
        status_at
    from messages
)

select * from final
