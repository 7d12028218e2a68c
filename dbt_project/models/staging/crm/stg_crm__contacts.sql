-- One row per CRM account (customer_id), emails lower-cased, phones in E.164.
select
    customer_id,
    email,
    phone,
    first_name,
    last_name,
    country,
    city,
    timezone,
    created_at,
    lead_source,
    birth_date,
    owner_id,
    _file,
    _row
from {{ ref('base_crm__contacts') }}
where not _rejected
