-- Revenue, cost and return per channel, attribution model and period. Two periods, both
-- ending on the as-of date: 'recent' (the `attribution_roi_period_days` days up to and
-- including it) and 'all_time' (from the first day with an order, a touch or a sent
-- message), so a report can show either and say which.
-- Conversions and revenue: orders placed in the period (their attribution weights);
-- completed orders of the period without any touch are the channel 'unattributed'.
-- Cost: spend (each per_day price × the days of the period it was valid on) plus sending
-- fees (messages sent in the period × the per_message price valid on the send date), from
-- the channel_costs seed. ROI and ROAS only where the channel has spend: sending fees
-- alone (fractions of a cent per email) leave out what a channel really costs, and their
-- "ROI" of millions of percent means nothing; those channels get cost per conversion
-- instead, and cost_basis says which case a row is.
{%- set period_days = positive_var('attribution_roi_period_days') %}
with costs as (
    select
        channel,
        cost_type,
        cast(amount as {{ type_double() }}) as amount,
        cast(cast(valid_from as {{ dbt.type_string() }}) as date) as valid_from,
        cast(nullif(cast(valid_to as {{ dbt.type_string() }}), '') as date) as valid_to
    from {{ ref('channel_costs') }}
),

activity_days as (
    select order_date as activity_date from {{ ref('int_orders_resolved') }}
    where is_purchase
    union all
    select cast(touched_at as date) from {{ ref('fct_touchpoints') }}
    union all
    select send_date from {{ ref('fct_messages') }}
    where is_sent
),

first_activity as (
    select min(activity_date) as first_day from activity_days
),

periods as (
    select
        'recent' as period,
        cast({{ dbt.dateadd('day', 1 - period_days, as_of_date()) }} as date) as period_start,
        {{ as_of_date() }} as period_end
    union all
    select
        'all_time' as period,
        -- nothing happened yet: a one-day period, so costs stay bounded
        coalesce(
            case when first_activity.first_day <= {{ as_of_date() }} then first_activity.first_day end,
            {{ as_of_date() }}
        ) as period_start,
        {{ as_of_date() }} as period_end
    from first_activity
),

models as (
    {%- for model in attribution_models() | map(attribute='model') %}
        select '{{ model }}' as model{% if not loop.last %}
            union all{% endif %}
    {%- endfor %}
),

attributed as (
    select
        periods.period,
        credit.channel,
        credit.model,
        sum(credit.weight) as conversions,
        sum(credit.attributed_revenue) as attributed_revenue
    from {{ ref('fct_attribution') }} as credit
    inner join periods
        on cast(credit.ordered_at as date) between periods.period_start and periods.period_end
    group by periods.period, credit.channel, credit.model
),

unattributed as (
    select
        periods.period,
        'unattributed' as channel,
        models.model,
        cast(count(*) as {{ type_double() }}) as conversions,
        sum(orders.amount) as attributed_revenue
    from {{ ref('int_orders_resolved') }} as orders
    inner join periods
        on orders.order_date between periods.period_start and periods.period_end
    cross join models
    where
        orders.is_purchase
        and not exists (
            select 1 from {{ ref('fct_attribution') }} as credited
            where credited.order_id = orders.order_id
        )
    group by periods.period, models.model
),

messages_sent as (
    select
        periods.period,
        messages.channel,
        count(*) as messages_sent,
        sum(coalesce(costs.amount, 0)) as sending_fees
    from {{ ref('fct_messages') }} as messages
    inner join periods
        on messages.send_date between periods.period_start and periods.period_end
    left join costs
        on
            messages.channel = costs.channel
            and costs.cost_type = 'per_message'
            and messages.send_date >= costs.valid_from
            and (costs.valid_to is null or messages.send_date <= costs.valid_to)
    where messages.is_sent
    group by periods.period, messages.channel
),

daily_spans as (
    select
        periods.period,
        costs.channel,
        costs.amount,
        case
            when costs.valid_from > periods.period_start then costs.valid_from else periods.period_start
        end as span_start,
        case
            when costs.valid_to is not null and costs.valid_to < periods.period_end then costs.valid_to
            else periods.period_end
        end as span_end
    from costs
    cross join periods
    where costs.cost_type = 'per_day'
),

spend as (
    select
        period,
        channel,
        sum(amount * ({{ dbt.datediff('span_start', 'span_end', 'day') }} + 1)) as spend
    from daily_spans
    where span_end >= span_start
    group by period, channel
),

credited as (
    select period, channel, model, conversions, attributed_revenue from attributed
    union all
    select period, channel, model, conversions, attributed_revenue from unattributed
),

grid as (
    select period, channel, model from credited
    union
    select spend.period, spend.channel, models.model from spend cross join models
    union
    select messages_sent.period, messages_sent.channel, models.model from messages_sent cross join models
),

joined as (
    select
        grid.channel,
        grid.model,
        grid.period,
        periods.period_start,
        periods.period_end,
        coalesce(credited.conversions, 0) as conversions,
        cast(coalesce(credited.attributed_revenue, 0) as {{ type_double() }}) as attributed_revenue,
        coalesce(messages_sent.messages_sent, 0) as messages_sent,
        cast(coalesce(spend.spend, 0) as {{ type_double() }}) as spend,
        cast(coalesce(messages_sent.sending_fees, 0) as {{ type_double() }}) as sending_fees
    from grid
    inner join periods on grid.period = periods.period
    left join credited
        on grid.period = credited.period and grid.channel = credited.channel and grid.model = credited.model
    left join spend on grid.period = spend.period and grid.channel = spend.channel
    left join messages_sent on grid.period = messages_sent.period and grid.channel = messages_sent.channel
),

final as (
    select
        channel,
        model,
        period,
        period_start,
        period_end,
        {{ dbt.datediff('period_start', 'period_end', 'day') }} + 1 as period_days,
        conversions,
        attributed_revenue,
        messages_sent,
        spend,
        sending_fees,
        spend + sending_fees as cost,
        case
            when spend > 0 then 'spend'
            when sending_fees > 0 then 'sending_fees_only'
            else 'none'
        end as cost_basis
    from joined
)

select
    channel,
    model,
    period,
    period_start,
    period_end,
    period_days,
    conversions,
    attributed_revenue,
    messages_sent,
    spend,
    sending_fees,
    cost,
    cost_basis,
    case when cost_basis = 'spend' then (attributed_revenue - cost) / cost end as roi,
    case when cost_basis = 'spend' then attributed_revenue / cost end as roas,
    case when cost > 0 and conversions > 0 then cost / conversions end as cost_per_conversion
from final
