-- One row per usable order (see base_commerce__orders for what is rejected and why).
select
    order_id,
    customer_id,
    ordered_at,
    amount,
    coalesce(currency, 'XXX') as currency,
    status,
    coalesce(discount_amount, 0) as discount_amount,
    coupon_code,
    coupon_code is not null or coalesce(discount_amount, 0) > 0 as used_coupon,
    channel,
    email,
    _file,
    _row
from {{ ref('base_commerce__orders') }}
where not _rejected
