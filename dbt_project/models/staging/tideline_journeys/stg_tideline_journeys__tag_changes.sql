-- Tags added and removed by journey tag steps (activation/journeys/store.py), append-only.
-- Empty until the first journey tick has created the state tables.
with tag_changes as (
    select * from {{ journey_state_relation('tag_changes') }} as state
)

select
    customer_id,
    tag,
    added as is_added,
    journey,
    entry_id,
    changed_at
from tag_changes
where {{ not_erased(customer_id='customer_id') }}
