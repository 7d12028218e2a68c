-- Orders up to the as-of date with the resolved customer. `is_purchase` marks the
-- orders that count as purchases (status completed).
select
    orders.order_id,
    resolved.customer_id,
    orders.customer_id as account_id,
    orders.ordered_at,
    cast(orders.ordered_at as date) as order_date,
    orders.amount,
    orders.currency,
    orders.status,
    orders.status = 'completed' as is_purchase,
    orders.discount_amount,
    orders.coupon_code,
    orders.used_coupon,
    orders.channel
from {{ ref('stg_commerce__orders') }} as orders
inner join {{ ref('int_accounts_resolved') }} as resolved on orders.customer_id = resolved.account_id
where orders.ordered_at < {{ as_of_cutoff() }}
