-- Usable CRM lead status changes (stage sales_accepted, opportunity, deal or lost; changed_at
-- UTC), by source account id. lead_crm_stages resolves the account to the customer.
select
    customer_id,
    crm_stage,
    changed_at,
    staff_id,
    _file,
    _row
from {{ ref('base_crm__lead_status') }}
where not _rejected
