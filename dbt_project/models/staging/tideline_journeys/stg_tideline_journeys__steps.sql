-- One row per node transition of a journey entry (activation/journeys/store.py), in seq order.
-- Empty until the first journey tick has created the state tables.
with steps as (
    select * from {{ journey_state_relation('steps') }} as state
)

select
    seq as step_seq,
    entry_id,
    journey,
    version,
    customer_id,
    from_node,
    to_node,
    outcome,
    reason,
    tick_id,
    moved_at
from steps
where {{ not_erased(customer_id='customer_id') }}
