{#- The rows of the staff entities that name an unknown customer or employee, in the shape of
    `rejects` (used by its unknown_references; `known_accounts` is its CTE of every account id).
    What is reported here is exactly what the marts leave out: customer_owners drops owner links
    to unknown customers or staff (and contacts' owner_id naming unknown staff), dim_staff clears a
    manager_id naming no employee, lead_crm_stages drops statuses of unknown customers and clears
    a staff_id naming no employee. -#}
{% macro staff_references() -%}
    select
        'crm_customer_owners' as entity,
        owners._file as source_file,
        owners._row as source_row,
        'customer_id' as field,
        owners.customer_id as value,
        'unknown customer: customer_id "' || owners.customer_id
        || '" is not in contacts, orders or events' as reason,
        'row_rejected' as action
    from {{ ref('stg_crm__customer_owners') }} as owners
    where
        not exists (
            select 1 from known_accounts
            where known_accounts.account_id = owners.customer_id
        )
    union all
    select
        'crm_customer_owners',
        owners._file,
        owners._row,
        'staff_id',
        owners.staff_id,
        'unknown employee: staff_id "' || owners.staff_id || '" is not in crm/staff',
        'row_rejected'
    from {{ ref('stg_crm__customer_owners') }} as owners
    where
        exists (
            select 1 from known_accounts
            where known_accounts.account_id = owners.customer_id
        )
        and not exists (
            select 1 from {{ ref('stg_crm__staff') }} as staff
            where staff.staff_id = owners.staff_id
        )
    union all
    select
        'crm_contacts',
        contacts._file,
        contacts._row,
        'owner_id',
        contacts.owner_id,
        'unknown employee: owner_id "' || contacts.owner_id || '" is not in crm/staff; no owner linked',
        'field_cleared'
    from {{ ref('stg_crm__contacts') }} as contacts
    where
        contacts.owner_id is not null
        and not exists (
            select 1 from {{ ref('stg_crm__staff') }} as staff
            where staff.staff_id = contacts.owner_id
        )
    union all
    select
        'crm_staff',
        staff._file,
        staff._row,
        'manager_id',
        staff.manager_id,
        'unknown manager: manager_id "' || staff.manager_id || '" is not in crm/staff; cleared',
        'field_cleared'
    from {{ ref('stg_crm__staff') }} as staff
    where
        staff.manager_id is not null
        and not exists (
            select 1 from {{ ref('stg_crm__staff') }} as managers
            where managers.staff_id = staff.manager_id
        )
    union all
    select
        'crm_lead_status',
        statuses._file,
        statuses._row,
        'customer_id',
        statuses.customer_id,
        'unknown customer: customer_id "' || statuses.customer_id
        || '" is not in contacts, orders or events',
        'row_rejected'
    from {{ ref('stg_crm__lead_status') }} as statuses
    where
        not exists (
            select 1 from known_accounts
            where known_accounts.account_id = statuses.customer_id
        )
    union all
    select
        'crm_lead_status',
        statuses._file,
        statuses._row,
        'staff_id',
        statuses.staff_id,
        'unknown employee: staff_id "' || statuses.staff_id || '" is not in crm/staff; cleared',
        'field_cleared'
    from {{ ref('stg_crm__lead_status') }} as statuses
    where
        statuses.staff_id is not null
        and exists (
            select 1 from known_accounts
            where known_accounts.account_id = statuses.customer_id
        )
        and not exists (
            select 1 from {{ ref('stg_crm__staff') }} as staff
            where staff.staff_id = statuses.staff_id
        )
{%- endmacro %}
