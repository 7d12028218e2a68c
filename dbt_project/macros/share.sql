{#- numerator / denominator as a double, null when the denominator is 0 (or null). -#}
{% macro share(numerator, denominator) -%}
    cast({{ numerator }} as {{ dbt.type_float() }}) / nullif({{ denominator }}, 0)
{%- endmacro %}
