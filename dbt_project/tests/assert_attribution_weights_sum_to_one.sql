-- Every attributed order gets exactly one unit of credit under every model: the
-- weights of its touches sum to 1 (within 1e-9), each weight is in [0, 1], and each
-- order appears under all six models.
with per_order as (
    select
        order_id,
        model,
        sum(weight) as total_weight,
        min(weight) as min_weight,
        max(weight) as max_weight
    from {{ ref('fct_attribution') }}
    group by order_id, model
),

models_per_order as (
    select order_id, count(distinct model) as models
    from {{ ref('fct_attribution') }}
    group by order_id
)

select per_order.order_id, per_order.model, per_order.total_weight, models_per_order.models
from per_order
inner join models_per_order on per_order.order_id = models_per_order.order_id
where
    abs(per_order.total_weight - 1) > 1e-9
    or per_order.min_weight < 0
    or per_order.max_weight > 1 + 1e-9
    or models_per_order.models <> {{ attribution_models() | length }}
