-- One row per sync run (activation/ledger.py): which segment and destination a sync_key
-- stands for, and its mode. Empty until the first sync has created the ledger.
with sync_runs as (
    select * from {{ sync_ledger_relation('sync_runs') }} as runs
)

select
    sync_id,
    sync_key,
    segment,
    destination,
    mode,
    dry_run,
    started_at,
    finished_at,
    status,
    segment_rows,
    sent,
    skipped,
    launched_by,
    campaign,
    content_version,
    launch_stage
from sync_runs
