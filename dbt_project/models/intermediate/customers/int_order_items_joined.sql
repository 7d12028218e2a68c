-- Order lines of usable orders up to the as-of date, with the resolved customer
-- and the product's category ('uncategorised' when the product is unknown).
select
    orders.order_id,
    orders.customer_id,
    orders.ordered_at,
    orders.is_purchase,
    items.product_id,
    coalesce(products.category, 'uncategorised') as category,
    items.quantity,
    items.unit_price,
    items.quantity * items.unit_price as line_amount
from {{ ref('stg_commerce__order_items') }} as items
inner join {{ ref('int_orders_resolved') }} as orders on items.order_id = orders.order_id
left join {{ ref('stg_commerce__products') }} as products on items.product_id = products.product_id
