-- Grain: one row per churned customer (no purchase for lifecycle_churned_days) we can reach.
select
    customers.customer_id,
    customers.email,
    customers.phone,
    customers.first_name,
    lifecycle.days_since_last_purchase,
    customers.revenue
from {{ ref('dim_customers') }} as customers
inner join {{ ref('customer_lifecycle') }} as lifecycle on customers.customer_id = lifecycle.customer_id
where
    lifecycle.lifecycle_stage = 'churned'
    and (customers.email is not null or customers.phone is not null)
