{#- Every landing order row, typed, with the reason each field is unusable.
    A row with any row-level issue is `_rejected`; stg_commerce__orders keeps the rest.
    Incremental (macros/incremental.sql): the pre-hook deletes the rows of landing files that changed
    since the last build, every row sharing an order_id with them (which version wins may have
    moved) and rows now erased; the landing rows the table then lacks are parsed and ranked again. -#}
{{ config(
    materialized=incremental_materialization(),
    incremental_strategy="append",
    pre_hook=[
        "{{ incremental_state_create() }}",
        "{{ landing_incremental_delete('commerce_orders', source('commerce', 'commerce_orders'),
            not_erased(customer_id='customer_id', email='email'),
            key='order_id', landing_key='order_id') }}",
    ],
    post_hook=["{{ incremental_state_clear() }}", "{{ incremental_state_record() }}"],
) }}
with source as (
    select landing_rows.* from {{ source('commerce', 'commerce_orders') }} as landing_rows
    where {{ landing_row_not_built('landing_rows') }}
),

parsed as (
    select
        _file,
        _row,
        {{ nullif_blank('order_id') }} as order_id,
        {{ nullif_blank('customer_id') }} as customer_id,
        {{ parse_timestamp('ordered_at') }} as ordered_at,
        {{ parse_number('amount') }} as amount,
        upper({{ nullif_blank('currency') }}) as currency,
        lower(coalesce({{ nullif_blank('status') }}, 'completed')) as status_raw,
        {{ parse_number('discount_amount') }} as discount_amount,
        {{ nullif_blank('coupon_code') }} as coupon_code,
        lower({{ nullif_blank('channel') }}) as channel,
        {{ normalise_email('email') }} as email,
        order_id as raw__order_id,
        customer_id as raw__customer_id,
        ordered_at as raw__ordered_at,
        amount as raw__amount,
        status as raw__status,
        discount_amount as raw__discount_amount,
        email as raw__email
    from source
),

checked as (
    select
        *,
        case
            when status_raw in ('completed', 'complete', 'paid', 'fulfilled', 'shipped', 'delivered') then 'completed'
            when status_raw in ('cancelled', 'canceled', 'voided', 'void') then 'cancelled'
            when status_raw in ('refunded', 'returned') then 'refunded'
        end as status,
        {{ required_issue('raw__order_id', 'order_id') }} as issue__order_id,
        {{ required_issue('raw__customer_id', 'customer_id') }} as issue__customer_id,
        {{ timestamp_issue('raw__ordered_at', 'ordered_at', 'ordered_at') }} as issue__ordered_at,
        {{ number_issue('raw__amount', 'amount', 'amount') }} as issue__amount,
        case when status_raw not in (
            'completed', 'complete', 'paid', 'fulfilled', 'shipped', 'delivered',
            'cancelled', 'canceled', 'voided', 'void', 'refunded', 'returned'
        ) then 'status "' || raw__status || '" is not one of completed, cancelled, refunded' end as issue__status,
        case
            when {{ nullif_blank('raw__discount_amount') }} is not null and discount_amount is null
                then 'discount_amount "' || raw__discount_amount || '" is not a number; cleared'
        end
            as issue__discount_amount,
        case
            when email is not null and not {{ is_valid_email('email') }}
                then 'email is not a valid address; cleared'
        end as issue__email
    from parsed
),

flagged as (
    select
        *,
        coalesce(
            issue__order_id, issue__customer_id, issue__ordered_at, issue__amount, issue__status
        ) is not null as _invalid
    from checked
),

-- the same order_id in several rows: the one in the latest file (then the latest row) wins
deduplicated as (
    select
        *,
        case
            when not _invalid then
                row_number() over (partition by _invalid, order_id order by _file desc, _row desc)
        end as _version_rank,
        case
            when not _invalid then
                first_value(_file || ' row ' || cast(_row as {{ dbt.type_string() }}))
                    over (partition by _invalid, order_id order by _file desc, _row desc)
        end as _winner
    from flagged
),

final as (
    select
        _file,
        _row,
        order_id,
        customer_id,
        ordered_at,
        amount,
        currency,
        status,
        case when issue__discount_amount is null then discount_amount end as discount_amount,
        coupon_code,
        channel,
        case when issue__email is null then email end as email,
        raw__order_id,
        raw__customer_id,
        raw__ordered_at,
        raw__amount,
        raw__status,
        raw__discount_amount,
        raw__email,
        issue__order_id,
        issue__customer_id,
        issue__ordered_at,
        issue__amount,
        issue__status,
        issue__discount_amount,
        issue__email,
        case
            when _version_rank > 1
                then 'duplicate order_id "' || order_id || '": superseded by ' || _winner
        end as issue__duplicate,
        _invalid or coalesce(_version_rank > 1, false) as _rejected
    from deduplicated
)

select * from final
where {{ not_erased(customer_id='customer_id', email='email') }}
