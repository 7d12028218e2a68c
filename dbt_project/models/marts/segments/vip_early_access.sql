-- Grain: one row per vip customer (top revenue share, see tag_definitions).
select
    tags.customer_id,
    customers.first_name,
    customers.country,
    customers.revenue
from {{ ref('customer_tags') }} as tags
inner join {{ ref('dim_customers') }} as customers on tags.customer_id = customers.customer_id
where tags.tag = 'vip'
