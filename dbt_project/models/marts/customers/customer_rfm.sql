-- One row per customer with at least one purchase up to the as-of date.
with stats as (
    select
        customer_id,
        {{ days_between('last_order_at', as_of_date()) }}             as recency_days,
        order_count as frequency,
        revenue as monetary
    from {{ ref('int_customer_orders_aggregated') }}
),

scored as (
    select
        customer_id,
        recency_days,
        frequency,
        monetary,
        {{ rfm_score('recency_days desc') }} as r_score,
        {{ rfm_score('frequency asc') }} as f_score,
        {{ rfm_score('monetary asc') }} as m_score
    from stats
),

combined as (
    select
        *,
        {{ fm_score('f_score', 'm_score') }} as fm_score
    from scored
),

final as (
    select
        combined.customer_id,
        combined.recency_days,
        combined.frequency,
        combined.monetary,
        combined.r_score,
        combined.f_score,
        combined.m_score,
        combined.fm_score,
        cast(combined.r_score as {{ dbt.type_string() }}) || cast(combined.f_score as {{ dbt.type_string() }}) || cast(combined.m_score as {{ dbt.type_string() }})
            as rfm_score,
        {{ rfm_segment("combined.r_score", "combined.fm_score") }} as rfm_segment,
        {{ as_of_date() }} as as_of_date
    from combined
)

select * from final
