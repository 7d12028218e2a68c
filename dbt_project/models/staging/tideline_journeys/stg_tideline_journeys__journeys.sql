-- One row per journey: its current version and status (activation/journeys/store.py).
-- Empty until the first journey tick has created the state tables.
with journeys as (
    select * from {{ journey_state_relation('journeys') }} as state
)

select
    journey,
    version as current_version,
    status,
    changed_at as status_changed_at
from journeys
