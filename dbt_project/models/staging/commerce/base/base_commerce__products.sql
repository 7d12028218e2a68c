{{ config(materialized="table") }}
with source as (
    select * from {{ source('commerce', 'commerce_products') }}
),

parsed as (
    select
        _file,
        _row,
        {{ nullif_blank('product_id') }} as product_id,
        {{ nullif_blank('name') }} as product_name,
        lower({{ nullif_blank('category') }}) as category,
        {{ parse_number('price') }} as price,
        product_id as raw__product_id,
        price as raw__price
    from source
),

checked as (
    select
        *,
        {{ required_issue('raw__product_id', 'product_id') }} as issue__product_id,
        case
            when {{ nullif_blank('raw__price') }} is not null and price is null
                then 'price "' || raw__price || '" is not a number; cleared'
        end as issue__price
    from parsed
),

ranked as (
    select
        *,
        case
            when issue__product_id is null
                then row_number() over (partition by product_id order by _file desc, _row desc)
        end as _version_rank
    from checked
)

select
    _file,
    _row,
    product_id,
    product_name,
    category,
    price,
    raw__product_id,
    raw__price,
    issue__product_id,
    issue__price,
    case when _version_rank > 1 then 'duplicate product_id "' || product_id || '": a later row wins' end
        as issue__duplicate,
    issue__product_id is not null or coalesce(_version_rank > 1, false) as _rejected
from ranked
