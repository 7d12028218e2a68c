-- One row per employee (crm/staff): where notifications reach them (notify_handle and its kind),
-- their manager, team, time zone and whether they are active. A manager_id that names no
-- employee is null here (and reported in rejects). Managers are taken as given, one step up:
-- a cycle (A manages B, B manages A) is kept, and "the owner's manager" is still one employee.
with staff as (
    select
        staff_id,
        staff_name,
        email,
        manager_id,
        handle,
        handle_kind,
        team,
        time_zone,
        is_active
    from {{ ref('stg_crm__staff') }}
),

final as (
    select
        staff.staff_id,
        staff.staff_name,
        staff.email,
        managers.staff_id as manager_id,
        staff.handle as notify_handle,
        staff.handle_kind as notify_kind,
        staff.team,
        staff.time_zone,
        staff.is_active
    from staff
    left join staff as managers on staff.manager_id = managers.staff_id
)

select
    staff_id,
    staff_name,
    email,
    manager_id,
    notify_handle,
    notify_kind,
    team,
    time_zone,
    is_active
from final
