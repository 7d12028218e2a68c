{{ config(materialized="table") }}
with source as (
    select * from {{ source('commerce', 'commerce_order_items') }}
),

-- the orders of erased people (macro not_erased): their lines are left out with them
erased_orders as (
    select {{ nullif_blank('orders.order_id') }} as order_id
    from {{ source('commerce', 'commerce_orders') }} as orders
    where not {{ not_erased(customer_id=nullif_blank('orders.customer_id'), email=normalise_email('orders.email')) }}
),

parsed as (
    select
        _file,
        _row,
        {{ nullif_blank('order_id') }} as order_id,
        {{ nullif_blank('product_id') }} as product_id,
        coalesce({{ parse_integer('quantity') }}, case when {{ nullif_blank('quantity') }} is null then 1 end)
            as quantity,
        {{ parse_number('unit_price') }} as unit_price,
        order_id as raw__order_id,
        product_id as raw__product_id,
        quantity as raw__quantity,
        unit_price as raw__unit_price
    from source
),

final as (
    select
        _file,
        _row,
        order_id,
        product_id,
        quantity,
        case when {{ nullif_blank('raw__unit_price') }} is null or unit_price >= 0 then unit_price end as unit_price,
        raw__order_id,
        raw__product_id,
        raw__quantity,
        raw__unit_price,
        {{ required_issue('raw__order_id', 'order_id') }} as issue__order_id,
        {{ required_issue('raw__product_id', 'product_id') }} as issue__product_id,
        case
            when quantity is null or quantity <= 0
                then 'quantity "' || raw__quantity || '" is not a positive whole number'
        end as issue__quantity,
        case
            when {{ nullif_blank('raw__unit_price') }} is not null and (unit_price is null or unit_price < 0)
                then 'unit_price "' || raw__unit_price || '" is not a non-negative number; cleared'
        end
            as issue__unit_price,
        {{ required_issue('raw__order_id', 'order_id') }} is not null
        or {{ required_issue('raw__product_id', 'product_id') }} is not null
        or quantity is null or quantity <= 0 as _rejected
    from parsed
)

select * from final
where
    order_id is null
    or order_id not in (
        select erased_orders.order_id from erased_orders
        where erased_orders.order_id is not null
    )
