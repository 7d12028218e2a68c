-- Every input problem, one row per file, row and field: rows that could not be
-- used (row_rejected) and optional fields that were cleared (field_cleared), plus
-- files and lines the loader could not read at all. Nothing is dropped silently.
with field_issues as (
    {{ reject_rows('base_commerce__orders', 'commerce_orders', [
        ('order_id', 'raw__order_id', 'row_rejected'),
        ('customer_id', 'raw__customer_id', 'row_rejected'),
        ('ordered_at', 'raw__ordered_at', 'row_rejected'),
        ('amount', 'raw__amount', 'row_rejected'),
        ('status', 'raw__status', 'row_rejected'),
        ('discount_amount', 'raw__discount_amount', 'field_cleared'),
        ('email', 'raw__email', 'field_cleared'),
        ('order_id', 'raw__order_id', 'duplicate'),
    ]) }}
    union all
    {{ reject_rows('base_commerce__order_items', 'commerce_order_items', [
        ('order_id', 'raw__order_id', 'row_rejected'),
        ('product_id', 'raw__product_id', 'row_rejected'),
        ('quantity', 'raw__quantity', 'row_rejected'),
        ('unit_price', 'raw__unit_price', 'field_cleared'),
    ]) }}
    union all
    {{ reject_rows('base_commerce__products', 'commerce_products', [
        ('product_id', 'raw__product_id', 'row_rejected'),
        ('price', 'raw__price', 'field_cleared'),
        ('product_id', 'raw__product_id', 'duplicate'),
    ]) }}
    union all
    {{ reject_rows('base_crm__contacts', 'crm_contacts', [
        ('customer_id', 'raw__customer_id', 'row_rejected'),
        ('email', 'raw__email', 'field_cleared'),
        ('phone', 'raw__phone', 'field_cleared'),
        ('created_at', 'raw__created_at', 'field_cleared'),
        ('birth_date', 'raw__birth_date', 'field_cleared'),
        ('customer_id', 'raw__customer_id', 'duplicate'),
    ]) }}
    union all
    {{ reject_rows('base_crm__consents', 'crm_consents', [
        ('customer_id', 'raw__customer_id', 'row_rejected'),
        ('channel', 'raw__channel', 'row_rejected'),
        ('status', 'raw__status', 'row_rejected'),
        ('consented_at', 'raw__consented_at', 'row_rejected'),
    ]) }}
    union all
    {{ reject_rows('base_crm__staff', 'crm_staff', [
        ('staff_id', 'raw__staff_id', 'row_rejected'),
        ('email', 'raw__email', 'field_cleared'),
        ('manager_id', 'raw__manager_id', 'field_cleared'),
        ('handle', 'raw__handle', 'field_cleared'),
        ('timezone', 'raw__timezone', 'field_cleared'),
        ('active', 'raw__active', 'field_cleared'),
        ('staff_id', 'raw__staff_id', 'duplicate'),
    ]) }}
    union all
    {{ reject_rows('base_crm__customer_owners', 'crm_customer_owners', [
        ('customer_id', 'raw__customer_id', 'row_rejected'),
        ('staff_id', 'raw__staff_id', 'row_rejected'),
        ('linked_at', 'raw__linked_at', 'field_cleared'),
    ]) }}
    union all
    {{ reject_rows('base_crm__lead_status', 'crm_lead_status', [
        ('customer_id', 'raw__customer_id', 'row_rejected'),
        ('stage', 'raw__stage', 'row_rejected'),
        ('changed_at', 'raw__changed_at', 'row_rejected'),
    ]) }}
    union all
    {{ reject_rows('base_events__events', 'events', [
        ('event_type', 'raw__event_type', 'row_rejected'),
        ('occurred_at', 'raw__occurred_at', 'row_rejected'),
        ('anonymous_id', 'raw__anonymous_id', 'row_rejected'),
        ('event_id', 'event_id', 'duplicate'),
    ]) }}
    union all
    {{ reject_rows('base_engagement__events', 'engagement_events', [
        ('event_id', 'raw__event_id', 'row_rejected'),
        ('event_type', 'raw__event_type', 'row_rejected'),
        ('occurred_at', 'raw__occurred_at', 'row_rejected'),
        ('received_at', 'raw__received_at', 'field_cleared'),
        ('channel', 'raw__channel', 'field_cleared'),
        ('link_index', 'raw__link_index', 'field_cleared'),
        ('bounce_type', 'raw__bounce_type', 'field_cleared'),
    ]) }}
),

known_accounts as (
    select customer_id as account_id from {{ ref('stg_crm__contacts') }}
    union
    select customer_id from {{ ref('stg_commerce__orders') }}
    union
    select customer_id from {{ ref('stg_events__events') }}
    where customer_id is not null
),

unknown_references as (
    select
        'crm_consents' as entity,
        consents._file as source_file,
        consents._row as source_row,
        'customer_id' as field,
        consents.customer_id as value,
        'unknown customer: customer_id "' || consents.customer_id
        || '" is not in contacts, orders or events' as reason,
        'row_rejected' as action
    from {{ ref('stg_crm__consents') }} as consents
    where
        not exists (
            select 1 from known_accounts
            where known_accounts.account_id = consents.customer_id
        )
    union all
    select
        'commerce_order_items',
        items._file,
        items._row,
        'order_id',
        items.order_id,
        'unknown order: order_id "' || items.order_id || '" is not a usable order',
        'row_rejected'
    from {{ ref('stg_commerce__order_items') }} as items
    where
        not exists (
            select 1 from {{ ref('stg_commerce__orders') }} as orders
            where orders.order_id = items.order_id
        )
    union all
    {{ staff_references() }}
),

load_issues as (
    select
        entity,
        _file as source_file,
        _row as source_row,
        field,
        value,
        reason,
        case when _row is null then 'file_rejected' else 'row_rejected' end as action
    from {{ source('landing', 'load_rejects') }}
),

unioned as (
    select * from field_issues
    union all
    select * from unknown_references
    union all
    select * from load_issues
)

select
    entity,
    source_file,
    source_row,
    field,
    value,
    reason,
    action,
    source_file || case when source_row is not null then ' row ' || cast(source_row as {{ dbt.type_string() }}) else '' end
    || ': ' || reason as message
from unioned
