-- The identities of erased people (activation/privacy/erasure.py): what staging matches future
-- and past rows on to leave them out (macro not_erased). kind: customer_id, anonymous_id,
-- email_sha256, phone_sha256. Empty until the first erasure has created the table.
with erased as (
    select * from {{ erased_identities_relation() }} as identities
)

select distinct
    kind,
    value
from erased
where value is not null
