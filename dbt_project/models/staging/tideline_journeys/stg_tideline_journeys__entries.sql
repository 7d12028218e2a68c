-- One row per journey entry (activation/journeys/store.py).
-- Empty until the first journey tick has created the state tables.
with entries as (
    select * from {{ journey_state_relation('entries') }} as state
)

select
    entry_id,
    journey,
    version,
    customer_id,
    trigger_id,
    entered_at,
    holdout as is_holdout,
    arm,
    current_node,
    node_entered_at,
    due_at,
    exited_at,
    exit_reason,
    goal_until,
    converted_at,
    tick_id
from entries
where {{ not_erased(customer_id='customer_id') }}
