-- Usable customer-owner links (customer_id and staff_id present; linked_at UTC or null), by
-- source account id. customer_owners resolves the account to the customer and drops unknown staff.
select
    customer_id,
    staff_id,
    linked_at,
    _file,
    _row
from {{ ref('base_crm__customer_owners') }}
where not _rejected
