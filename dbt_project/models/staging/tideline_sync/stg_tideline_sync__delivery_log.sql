-- Every delivery ledger event (activation/ledger.py), with the message key as text: the
-- idempotency key as a lower-case UUID with dashes, as the tracking tokens carry it.
-- Empty until the first sync has created the ledger. is_test: a test send to internal accounts
-- (campaign test:..., activation/journeys/testsend.py), never counted in performance.
with delivery_log as (
    select * from {{ sync_ledger_relation('delivery_log') }} as ledger
)

select
    seq,
    lower(cast(idempotency_key as {{ dbt.type_string() }})) as message_key,
    sync_key,
    sync_id,
    customer_id,
    action,
    status,
    reason,
    channel,
    campaign,
    variant,
    content_version,
    recorded_at,
    stage as launch_stage,
    coalesce(campaign like 'test:%', false) as is_test
from delivery_log
where {{ not_erased(customer_id='customer_id') }}
