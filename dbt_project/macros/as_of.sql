{#- The as-of date every time-dependent model uses (dbt var `as_of`, default today). -#}
{% macro as_of_date() -%}
    {%- set v = var('as_of', '') -%}
    {%- if v is none or (v | string | trim) == '' -%}
        current_date
    {%- else -%}
        {%- if not modules.re.match('^\d{4}-\d{2}-\d{2}$', v | string | trim) -%}
            {{ exceptions.raise_compiler_error("var as_of must be a date like 2026-01-31, got '" ~ v ~ "'") }}
        {%- endif -%}
        cast('{{ v | string | trim }}' as date)
    {%- endif -%}
{%- endmacro %}

{#- Exclusive upper bound for timestamps: the start of the day after the as-of date. -#}
{% macro as_of_cutoff() -%}
    cast({{ dbt.dateadd('day', 1, as_of_date()) }} as timestamp)
{%- endmacro %}

{#- Whole days from `start` to `end` (both dates or timestamps). -#}
{% macro days_between(start, end) -%}
    {{ dbt.datediff('cast(' ~ start ~ ' as date)', 'cast(' ~ end ~ ' as date)', 'day') }}
{%- endmacro %}

{#- Checks that lifecycle thresholds are ordered; fails compilation with a clear message. -#}
{% macro check_lifecycle_vars() -%}
    {%- set new = var('lifecycle_new_days') | int -%}
    {%- set react = var('lifecycle_reactivated_days') | int -%}
    {%- set risk = var('lifecycle_at_risk_days') | int -%}
    {%- set churn = var('lifecycle_churned_days') | int -%}
    {%- if not (0 < new < risk and 0 < react < risk and risk < churn) -%}
        {{ exceptions.raise_compiler_error(
            "lifecycle vars must satisfy 0 < lifecycle_new_days, lifecycle_reactivated_days < lifecycle_at_risk_days"
            ~ " < lifecycle_churned_days; got new=" ~ new ~ " reactivated=" ~ react ~ " at_risk=" ~ risk
            ~ " churned=" ~ churn) }}
    {%- endif -%}
{%- endmacro %}
