{{ config(materialized="table") }}
{#- Every landing contact row, typed and normalised, with the reason each field is
    unusable. Bad optional fields (email, phone, created_at, birth_date) are cleared and
    reported; the row is rejected only without a customer_id or as a duplicate. -#}
with source as (
    select * from {{ source('crm', 'crm_contacts') }}
),

countries as (
    select country, calling_code, trunk_prefix, national_digits from {{ ref('country_calling_codes') }}
),

parsed as (
    select
        source._file,
        source._row,
        {{ nullif_blank('source.customer_id') }} as customer_id,
        {{ normalise_email('source.email') }} as email_normalised,
        {{ phone_compact('source.phone') }} as phone_compact,
        {{ nullif_blank('source.first_name') }} as first_name,
        {{ nullif_blank('source.last_name') }} as last_name,
        upper({{ nullif_blank('source.country') }}) as country,
        {{ nullif_blank('source.city') }} as city,
        {{ nullif_blank('source.timezone') }} as timezone,
        {{ parse_timestamp('source.created_at') }} as created_at,
        lower({{ nullif_blank('source.source') }}) as lead_source,
        cast({{ parse_timestamp('source.birth_date') }} as date) as birth_date_parsed,
        {{ nullif_blank('source.owner_id') }} as owner_id,
        source.customer_id as raw__customer_id,
        source.email as raw__email,
        source.phone as raw__phone,
        source.created_at as raw__created_at,
        source.birth_date as raw__birth_date
    from source
),

phones as (
    select
        parsed.*,
        {{ phone_e164('parsed.phone_compact', 'countries.calling_code', 'countries.trunk_prefix',
                      'countries.national_digits') }} as phone_candidate
    from parsed
    left join countries on parsed.country = countries.country
),

checked as (
    select
        *,
        {{ required_issue('raw__customer_id', 'customer_id') }} as issue__customer_id,
        case
            when email_normalised is not null and not {{ is_valid_email('email_normalised') }}
                then 'email is not a valid address; cleared'
        end as issue__email,
        case
            when
                {{ nullif_blank('phone_compact') }} is not null
                and (phone_candidate is null or not {{ is_valid_e164('phone_candidate') }})
                then
                    'phone cannot be normalised to E.164'
                    || case when country is null then ' (no country given)' else ' for country ' || country end
                    || '; cleared'
        end as issue__phone,
        {{ timestamp_issue('raw__created_at', 'created_at', 'created_at', required=false) }} as issue__created_at,
        case
            when {{ nullif_blank('raw__birth_date') }} is null then null
            when birth_date_parsed is null
                then 'birth_date "' || raw__birth_date || '" is not a date (use YYYY-MM-DD, e.g. 1990-05-17)'
            when birth_date_parsed < cast('1900-01-01' as date) or birth_date_parsed > {{ as_of_date() }}
                then 'birth_date ' || raw__birth_date || ' is not a plausible birth date'
        end as issue__birth_date
    from phones
),

ranked as (
    select
        *,
        case
            when issue__customer_id is null
                then row_number() over (partition by customer_id order by _file desc, _row desc)
        end as _version_rank,
        case
            when issue__customer_id is null
                then first_value(_file || ' row ' || cast(_row as {{ dbt.type_string() }}))
                    over (partition by customer_id order by _file desc, _row desc)
        end as _winner
    from checked
),

final as (
    select
        _file,
        _row,
        customer_id,
        case when issue__email is null then email_normalised end as email,
        case when issue__phone is null then phone_candidate end as phone,
        first_name,
        last_name,
        country,
        city,
        timezone,
        created_at,
        lead_source,
        case when issue__birth_date is null then birth_date_parsed end as birth_date,
        owner_id,
        raw__customer_id,
        raw__email,
        raw__phone,
        raw__created_at,
        raw__birth_date,
        issue__customer_id,
        issue__email,
        issue__phone,
        case when issue__created_at is not null then issue__created_at || '; cleared' end as issue__created_at,
        case when issue__birth_date is not null then issue__birth_date || '; cleared' end as issue__birth_date,
        case
            when _version_rank > 1
                then 'duplicate customer_id "' || customer_id || '": superseded by ' || _winner
        end as issue__duplicate,
        issue__customer_id is not null or coalesce(_version_rank > 1, false) as _rejected
    from ranked
)

select * from final
where {{ not_erased(customer_id='customer_id', email='email', phone='phone') }}
