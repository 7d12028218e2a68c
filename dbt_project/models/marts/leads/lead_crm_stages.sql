-- The CRM stages of each lead (crm/lead_status): one row per resolved customer and day a stage was
-- recorded, on or before the as-of date. Of several statuses on one day the latest changed_at wins
-- (then the later file and row); a stage is in force from its day until the day of the customer's
-- next status (in_force_until, exclusive; null while it lasts). Statuses recorded after the as-of
-- date are ignored until their day. Accounts merged by identity stitching share their statuses.
with accounts as (
    select distinct source_id as account_id, customer_id
    from {{ ref('customer_id_map') }}
    where source in ('crm', 'commerce', 'web')
),

statuses as (
    select
        accounts.customer_id,
        statuses.crm_stage,
        statuses.changed_at,
        cast(statuses.changed_at as date) as changed_on,
        staff.staff_id,
        statuses._file,
        statuses._row
    from {{ ref('stg_crm__lead_status') }} as statuses
    inner join accounts on statuses.customer_id = accounts.account_id
    left join {{ ref('stg_crm__staff') }} as staff on statuses.staff_id = staff.staff_id
    where statuses.changed_at < {{ as_of_cutoff() }}
),

latest_per_day as (
    select
        *,
        row_number() over (
            partition by customer_id, changed_on
            order by changed_at desc, _file desc, _row desc
        ) as day_rank
    from statuses
)

select
    customer_id,
    crm_stage,
    changed_at,
    staff_id,
    changed_on as in_force_from,
    lead(changed_on) over (partition by customer_id order by changed_on) as in_force_until,
    {{ as_of_date() }} as as_of_date
from latest_per_day
where day_rank = 1
