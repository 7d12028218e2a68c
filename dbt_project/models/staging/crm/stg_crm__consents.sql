-- Usable consent events. Events for a customer_id known nowhere else are reported
-- by `rejects` and left out of int_consents_latest.
select
    customer_id,
    channel,
    is_granted,
    consented_at,
    consent_source,
    _file,
    _row
from {{ ref('base_crm__consents') }}
where not _rejected
