-- Grain: one row per real (not dry) sync run: who or what launched it, what it sent (segment,
-- destination, campaign, content version), to how many, when, at which launch stage, and who had
-- approved that content version by then (activation/launches: `tideline approve`). Answers "who
-- sent what to how many, when, approved by whom" from the ledger's run records.
with runs as (
    select
        sync_id,
        sync_key,
        segment,
        destination,
        mode,
        campaign,
        content_version,
        launched_by,
        launch_stage,
        started_at,
        finished_at,
        segment_rows,
        sent,
        skipped,
        status
    from {{ ref('stg_tideline_sync__sync_runs') }}
    where not dry_run
),

approvals as (
    select
        sync_key,
        content_version,
        decided_by,
        decided_at
    from {{ ref('stg_tideline_sync__launch_decisions') }}
    where stage = 'approval' and decision = 'approved'
),

-- the latest approval of the run's content version given before the run started
approved as (
    select
        runs.sync_id,
        approvals.decided_by as approved_by,
        approvals.decided_at as approved_at,
        row_number() over (partition by runs.sync_id order by approvals.decided_at desc) as recency
    from runs
    inner join approvals
        on
            runs.sync_key = approvals.sync_key
            and runs.content_version = approvals.content_version
            and runs.started_at >= approvals.decided_at
),

final as (
    select
        runs.sync_id,
        runs.sync_key,
        runs.segment,
        runs.destination,
        runs.mode,
        runs.campaign,
        runs.content_version,
        coalesce(runs.launched_by, 'unknown') as launched_by,
        runs.launch_stage,
        runs.started_at,
        runs.finished_at,
        runs.segment_rows as audience,
        runs.sent,
        runs.skipped,
        runs.status,
        approved.approved_by,
        approved.approved_at
    from runs
    left join approved on runs.sync_id = approved.sync_id and approved.recency = 1
)

select * from final
