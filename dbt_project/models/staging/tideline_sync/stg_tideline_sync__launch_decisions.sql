-- One row per launch decision or gate rule judged (activation/launches, DDL in activation/ledger.py).
-- Empty until the first staged launch has decided something.
with launch_decisions as (
    select * from {{ sync_ledger_relation('launch_decisions') }} as decisions
)

select
    decision_id,
    sync_key,
    campaign,
    content_version,
    stage,
    decision,
    metric,
    value,
    bound,
    threshold,
    sample,
    variant,
    detail,
    decided_at,
    decided_by
from launch_decisions
