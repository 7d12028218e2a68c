-- One row per staff notification (activation/staff/store.py); empty before the first run.
with notifications as (
    select * from {{ python_owned_relation('tideline_staff', 'notifications', staff_notification_columns()) }} as state
)

select
    notification_id,
    rule,
    rule_kind,
    customer_id,
    event_key,
    staff_id,
    recipient,
    route,
    fell_back,
    fallback_reason,
    destination,
    handle_kind,
    message,
    link,
    via_digest,
    digest_id,
    occurred_at,
    created_at,
    due_at,
    status,
    status_reason,
    attempts,
    sent_at
from notifications
