{#- Erased identities (GDPR erasure, activation/privacy/erasure.py): tideline_sync.erased_identities
    holds (request_id, kind, value) with kind customer_id (the resolved id and every source id
    merged into it), anonymous_id, email_sha256 and phone_sha256 (sha256 hex of the normalised
    email / E.164 phone; the address itself is never stored). Python creates the table with the
    first erasure; dbt reads it through python_owned_relation, so a warehouse where nobody was
    erased builds (an empty select). erased_identity_columns() repeats the DDL's columns:
    tests/dbt/test_erasure.py holds the two together. -#}

{% macro erased_identity_columns() -%}
    {{ return([
        ('request_id', dbt.type_string()),
        ('kind', dbt.type_string()),
        ('value', dbt.type_string()),
    ]) }}
{%- endmacro %}

{% macro erased_identities_relation() -%}
    {{ python_owned_relation('tideline_privacy', 'erased_identities', erased_identity_columns()) }}
{%- endmacro %}

{#- The erased values of one kind, as a subquery for `x not in (...)` (never null). -#}
{% macro erased_values(kind) -%}
    (
        select erased.value from {{ ref('stg_tideline_privacy__erased_identities') }} as erased
        where erased.kind = '{{ kind }}'
    )
{%- endmacro %}

{#- True when a row names no erased person. Each argument is a SQL expression of the row (or
    none): an id in the customer id space (source or resolved), an anonymous id, a normalised
    email, an E.164 phone. Staging's base models keep only such rows, so an erased person never
    reaches intermediate models, marts or the rejects report, in this build or any later one. -#}
{% macro not_erased(customer_id=none, anonymous_id=none, email=none, phone=none) -%}
    (
        true
        {%- if customer_id is not none %}
            and ({{ customer_id }} is null or {{ customer_id }} not in {{ erased_values('customer_id') }})
        {%- endif %}
        {%- if anonymous_id is not none %}
            and ({{ anonymous_id }} is null or {{ anonymous_id }} not in {{ erased_values('anonymous_id') }})
        {%- endif %}
        {%- if email is not none %}
            and ({{ email }} is null or {{ sha256_hex(email) }} not in {{ erased_values('email_sha256') }})
        {%- endif %}
        {%- if phone is not none %}
            and ({{ phone }} is null or {{ sha256_hex(phone) }} not in {{ erased_values('phone_sha256') }})
        {%- endif %}
    )
{%- endmacro %}
