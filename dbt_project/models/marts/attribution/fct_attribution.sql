-- Credit for each completed order (a conversion) spread over its path, the converting paths of
-- fct_attribution_paths (which holds the path rules). Models: attribution_models(); one row per
-- order × touch × model; weights sum to 1 per order and model. Orders without a touch on their
-- path get no rows (channel_roi counts them as unattributed).
{%- set half_life = positive_var('attribution_half_life_days', whole=false) %}
with paths as (
    select
        order_id,
        customer_id,
        ordered_at,
        order_amount,
        touchpoint_id,
        touched_at,
        channel,
        campaign,
        touch_type,
        touch_position,
        path_length,
        cast({{ dbt.datediff('touched_at', 'ordered_at', 'second') }} as {{ type_double() }}) / 86400 as age_days
    from {{ ref('fct_attribution_paths') }}
    where is_converting
),

-- The latest Markov removal effects (ml.channel_removal_effects, written by the
-- channel_removal_effects asset; empty until it first runs).
removal_effects as (
    select effects.channel, effects.removal_share
    from {{ source('ml', 'channel_removal_effects') }} as effects
    where effects.computed_at = (
        select max(latest.computed_at) from {{ source('ml', 'channel_removal_effects') }} as latest
    )
),

scored as (
    select
        paths.*,
        power(cast(2 as {{ type_double() }}), -paths.age_days / {{ half_life }}) as decay,
        coalesce(removal_effects.removal_share, 0) as removal_share
    from paths
    left join removal_effects on paths.channel = removal_effects.channel
),

weighted as (
    select
        scored.*,
        case when scored.touch_position = 1 then 1.0 else 0.0 end as w_first_touch,
        case when scored.touch_position = scored.path_length then 1.0 else 0.0 end as w_last_touch,
        cast(1 as {{ type_double() }}) / scored.path_length as w_linear,
        scored.decay / sum(scored.decay) over (partition by scored.order_id) as w_time_decay,
        case
            when scored.path_length = 1 then 1.0
            when scored.path_length = 2 then 0.5
            when scored.touch_position = 1 or scored.touch_position = scored.path_length then 0.4
            else cast(0.2 as {{ type_double() }}) / (scored.path_length - 2)
        end as w_position_based,
        case
            when sum(scored.removal_share) over (partition by scored.order_id) > 0
                then scored.removal_share / sum(scored.removal_share) over (partition by scored.order_id)
            else cast(1 as {{ type_double() }}) / scored.path_length
        end as w_data_driven
    from scored
),

final as (
    {%- for model in attribution_models() | map(attribute='model') %}
        select
            order_id,
            customer_id,
            ordered_at,
            order_amount,
            touchpoint_id,
            touched_at,
            channel,
            campaign,
            touch_type,
            touch_position,
            path_length,
            '{{ model }}' as model,
            cast(w_{{ model }} as {{ type_double() }}) as weight,
            cast(w_{{ model }} as {{ type_double() }}) * order_amount as attributed_revenue
        from weighted
        {%- if not loop.last %}
            union all
        {%- endif %}
    {%- endfor %}
)

select
    order_id,
    customer_id,
    ordered_at,
    order_amount,
    touchpoint_id,
    touched_at,
    channel,
    campaign,
    touch_type,
    touch_position,
    path_length,
    model,
    weight,
    attributed_revenue
from final
