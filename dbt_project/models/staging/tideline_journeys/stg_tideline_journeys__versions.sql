-- One row per journey version ever seen (activation/journeys/store.py).
-- Empty until the first journey tick has created the state tables.
with versions as (
    select * from {{ journey_state_relation('versions') }} as state
)

select
    journey,
    version,
    definition,
    source as source_file,
    first_seen_at
from versions
