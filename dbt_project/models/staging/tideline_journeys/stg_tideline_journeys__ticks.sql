-- One row per tick per journey (activation/journeys/store.py).
-- Empty until the first journey tick has created the state tables.
with ticks as (
    select * from {{ journey_state_relation('ticks') }} as state
)

select
    tick_id,
    journey,
    clock as ticked_at,
    started_at,
    finished_at,
    entered,
    advanced,
    sent,
    skipped,
    exited,
    by_reason,
    duration_seconds,
    dry_run
from ticks
