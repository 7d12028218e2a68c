-- Revenue, cost, ROI and ROAS per channel and attribution model over the analysed
-- period: the `attribution_roi_period_days` days up to and including the as-of date.
-- Conversions and revenue: orders placed in the period (their attribution weights);
-- completed orders in the period without any touch are the channel 'unattributed'.
-- Cost: messages sent in the period × the channel's per_message price, plus each
-- per_day price × the days of the period it was valid on (seed channel_costs).
{%- set period_days = var('attribution_roi_period_days') | int %}
{%- if period_days <= 0 %}
    {{ exceptions.raise_compiler_error("attribution_roi_period_days must be positive") }}
{%- endif %}
{%- set period_start = 'cast(' ~ dbt.dateadd('day', 1 - period_days, as_of_date()) ~ ' as date)' %}
{%- set period_end = as_of_date() %}
with costs as (
    select
        channel,
        cost_type,
        cast(amount as double precision) as amount,
        cast(cast(valid_from as varchar) as date) as valid_from,
        cast(nullif(cast(valid_to as varchar), '') as date) as valid_to
    from {{ ref('channel_costs') }}
),

attributed as (
    select
        channel,
        model,
        sum(weight) as conversions,
        sum(attributed_revenue) as attributed_revenue
    from {{ ref('fct_attribution') }}
    where cast(ordered_at as date) >= {{ period_start }}
    group by channel, model
),

models as (
    {%- for model in attribution_models() %}
        select '{{ model }}' as model{% if not loop.last %}
            union all{% endif %}
    {%- endfor %}
),

unattributed as (
    select
        'unattributed' as channel,
        models.model,
        cast(count(*) as double precision) as conversions,
        sum(orders.amount) as attributed_revenue
    from {{ ref('int_orders_resolved') }} as orders
    cross join models
    where
        orders.is_purchase
        and orders.order_date >= {{ period_start }}
        and not exists (
            select 1 from {{ ref('fct_attribution') }} as credited
            where credited.order_id = orders.order_id
        )
    group by models.model
),

message_costs as (
    select
        messages.channel,
        sum(costs.amount) as cost
    from {{ ref('fct_messages') }} as messages
    inner join costs
        on
            messages.channel = costs.channel
            and costs.cost_type = 'per_message'
            and messages.send_date >= costs.valid_from
            and (costs.valid_to is null or messages.send_date <= costs.valid_to)
    where messages.is_sent and messages.send_date >= {{ period_start }} and messages.send_date <= {{ period_end }}
    group by messages.channel
),

daily_spans as (
    select
        channel,
        amount,
        case when valid_from > {{ period_start }} then valid_from else {{ period_start }} end as span_start,
        case
            when valid_to is not null and valid_to < {{ period_end }} then valid_to else {{ period_end }}
        end as span_end
    from costs
    where cost_type = 'per_day'
),

daily_costs as (
    select
        channel,
        sum(amount * ({{ dbt.datediff('span_start', 'span_end', 'day') }} + 1)) as cost
    from daily_spans
    where span_end >= span_start
    group by channel
),

channel_costs as (
    select channel, sum(cost) as cost
    from (
        select channel, cost from message_costs
        union all
        select channel, cost from daily_costs
    ) as all_costs
    group by channel
),

credited as (
    select channel, model, conversions, attributed_revenue from attributed
    union all
    select channel, model, conversions, attributed_revenue from unattributed
),

grid as (
    select channel, model from credited
    union
    select channel_costs.channel, models.model from channel_costs cross join models
),

final as (
    select
        grid.channel,
        grid.model,
        coalesce(credited.conversions, 0) as conversions,
        cast(coalesce(credited.attributed_revenue, 0) as double precision) as attributed_revenue,
        coalesce(channel_costs.cost, 0) as cost
    from grid
    left join credited on grid.channel = credited.channel and grid.model = credited.model
    left join channel_costs on grid.channel = channel_costs.channel
)

select
    channel,
    model,
    conversions,
    attributed_revenue,
    cost,
    case when cost > 0 then (attributed_revenue - cost) / cost end as roi,
    case when cost > 0 then attributed_revenue / cost end as roas
from final
