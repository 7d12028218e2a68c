{#- numerator / denominator as a double, null when the denominator is 0 (or null). `double
    precision`, not dbt.type_float(): that is a 4-byte FLOAT on DuckDB, whose 0.05 is
    0.0500000007, above a 0.05 threshold compared in Python. -#}
{% macro share(numerator, denominator) -%}
    cast({{ numerator }} as {{ type_double() }}) / nullif({{ denominator }}, 0)
{%- endmacro %}
