{#- The value of a dbt var that must be a positive number (a whole number unless whole=false),
    or a compile error naming the var: the one check of the day counts and half-lives models
    read (`--vars` overrides them as much as dbt_project.yml sets them). -#}
{% macro positive_var(name, whole=true) -%}
    {%- set raw = var(name) -%}
    {%- set value = raw | float -%}
    {%- if value <= 0 or (whole and value != (raw | int)) -%}
        {{ exceptions.raise_compiler_error(
            "var " ~ name ~ " must be a positive " ~ ("whole number" if whole else "number")
            ~ " (dbt_project.yml vars:, or --vars), got '" ~ raw ~ "'") }}
    {%- endif -%}
    {{ return(raw | int if whole else value) }}
{%- endmacro %}
