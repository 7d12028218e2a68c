-- Purchase statistics per resolved customer (completed orders up to the as-of date).
select
    customer_id,
    min(ordered_at) as first_order_at,
    max(ordered_at) as last_order_at,
    count(*) as order_count,
    count(distinct order_date) as purchase_days,
    sum(amount) as revenue,
    cast(sum(amount) as {{ type_double() }}) / count(*) as average_order_value,
    sum(case when used_coupon then 1 else 0 end) as coupon_order_count,
    sum(discount_amount) as discount_total
from {{ ref('int_orders_resolved') }}
where is_purchase
group by customer_id
