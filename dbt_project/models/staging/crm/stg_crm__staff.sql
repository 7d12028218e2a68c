-- One row per employee (staff_id): email lower-cased, handle classified as webhook or email,
-- time zone a known IANA name. manager_id as given (dim_staff clears unknown managers).
select
    staff_id,
    staff_name,
    email,
    manager_id,
    handle,
    handle_kind,
    team,
    time_zone,
    is_active,
    _file,
    _row
from {{ ref('base_crm__staff') }}
where not _rejected
