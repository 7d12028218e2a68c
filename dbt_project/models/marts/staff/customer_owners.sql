-- One row per customer and linked employee: the links of crm/customer_owners and the owner_id of
-- crm/contacts (linked since the contact's created_at), resolved to the customer the identity
-- stitching merged the account into (customer_id_map). Links to unknown customers or employees
-- are left out (rejects reports them); links made after the as-of date do not exist yet. When one
-- employee is linked to a customer several times (two merged accounts, a contact and a link row),
-- the earliest link wins (its linked_at and source; a link without linked_at comes last).
-- owner_rank 1 is the first linked employee (by linked_at, then staff_id).
with accounts as (
    select distinct source_id as account_id, customer_id
    from {{ ref('customer_id_map') }}
    where source in ('crm', 'commerce', 'web')
),

links as (
    select customer_id as account_id, staff_id, linked_at, 'customer_owners' as source
    from {{ ref('stg_crm__customer_owners') }}
    union all
    select customer_id, owner_id, created_at, 'contacts'
    from {{ ref('stg_crm__contacts') }}
    where owner_id is not null
),

resolved as (
    select
        accounts.customer_id,
        links.staff_id,
        links.linked_at,
        links.source,
        staff.is_active as staff_is_active
    from links
    inner join accounts on links.account_id = accounts.account_id
    inner join {{ ref('dim_staff') }} as staff on links.staff_id = staff.staff_id
    where links.linked_at is null or links.linked_at < {{ as_of_cutoff() }}
),

earliest as (
    select
        *,
        row_number() over (
            partition by customer_id, staff_id
            order by case when linked_at is null then 1 else 0 end, linked_at, source
        ) as link_rank
    from resolved
),

final as (
    select
        customer_id,
        staff_id,
        linked_at,
        cast(row_number() over (
            partition by customer_id
            order by case when linked_at is null then 1 else 0 end, linked_at, staff_id
        ) as integer) as owner_rank,
        source,
        staff_is_active
    from earliest
    where link_rank = 1
)

select
    customer_id,
    staff_id,
    linked_at,
    owner_rank,
    source,
    staff_is_active
from final
