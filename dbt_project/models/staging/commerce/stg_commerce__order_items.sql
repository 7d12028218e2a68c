-- Usable order lines. Lines whose order is unknown are reported by `rejects`
-- and left out of int_order_items_joined.
select
    order_id,
    product_id,
    quantity,
    unit_price,
    _file,
    _row
from {{ ref('base_commerce__order_items') }}
where not _rejected
