{#- Small cross-engine helpers (DuckDB is `default__`; docs/scaling.md, "The dbt project on
    Apache Spark"): where a rule's SQL would differ between engines, the model calls one of these. -#}

{#- `expr` rounded to `places` decimals, half away from zero. PostgreSQL has round(numeric, int)
    but no round(double precision, int), so a double is rounded as numeric there -#}
{% macro round_to(expr, places=0) -%}
    {{ return(adapter.dispatch('round_to', 'tideline')(expr, places)) }}
{%- endmacro %}

{% macro default__round_to(expr, places=0) -%}
    round({{ expr }}, {{ places }})
{%- endmacro %}

{#- (and round(double precision) rounds half to even there; numeric rounds half away from zero, as
    DuckDB and Spark do) -#}
{% macro postgres__round_to(expr, places=0) -%}
    round(cast({{ expr }} as numeric), {{ places }})
{%- endmacro %}

{#- A number as text the way DuckDB writes `cast(round(expr, places) as varchar)`: a double keeps
    its shortest form with at least one decimal ("121.3", "500.0"), a decimal its scale ("1234.50").
    PostgreSQL writes an integral double without ".0" and rounds doubles half to even, so there
    the double is rounded as numeric and given the ".0" back; the type is only known at run time
    (pg_typeof). -#}
{% macro number_text(expr, places=none) -%}
    {{ return(adapter.dispatch('number_text', 'tideline')(expr, places)) }}
{%- endmacro %}

{% macro default__number_text(expr, places=none) -%}
    cast(round({{ expr }}{% if places is not none %}, {{ places }}{% endif %}) as {{ dbt.type_string() }})
{%- endmacro %}

{% macro postgres__number_text(expr, places=none) -%}
    case
        when pg_typeof({{ expr }}) in ('double precision'::regtype, 'real'::regtype)
            then regexp_replace(
                cast(cast(round(cast({{ expr }} as numeric), {{ places or 0 }}) as double precision) as text),
                '^(-?[0-9]+)$', '\1.0'
            )
        else cast(round(cast({{ expr }} as numeric){% if places is not none %}, {{ places }}{% endif %}) as text)
    end
{%- endmacro %}

{#- The 8-byte floating type: `double precision` in standard SQL (DuckDB, PostgreSQL), `double` on
    Spark. (dbt.type_float() is a 4-byte float on DuckDB.) -#}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double', 'tideline')()) }}
{%- endmacro %}

{% macro default__type_double() -%}
    {{ return('double precision') }}
{%- endmacro %}

{% macro spark__type_double() -%}
    {{ return('double') }}
{%- endmacro %}

{#- A UUID column (the ledger's idempotency keys): `uuid` where the engine has the type, text on Spark. -#}
{% macro type_uuid() -%}
    {{ return(adapter.dispatch('type_uuid', 'tideline')()) }}
{%- endmacro %}

{% macro default__type_uuid() -%}
    {{ return('uuid') }}
{%- endmacro %}

{% macro spark__type_uuid() -%}
    {{ return(dbt.type_string()) }}
{%- endmacro %}

{#- The integers `first`..`last` (inclusive), one per row in column `name`: a select, to use as
    `from ({{ integer_series(0, 9, 'i') }}) as offsets`. Spark has no generate_series table function. -#}
{% macro integer_series(first, last, name) -%}
    {{ return(adapter.dispatch('integer_series', 'tideline')(first, last, name)) }}
{%- endmacro %}

{% macro default__integer_series(first, last, name) -%}
    select series.{{ name }} from generate_series({{ first }}, {{ last }}) as series ({{ name }})
{%- endmacro %}

{% macro spark__integer_series(first, last, name) -%}
    select explode(sequence({{ first }}, {{ last }})) as {{ name }}
{%- endmacro %}

{#- A column type written as its standard SQL name in a column list (the ML tables, the ledger's and
    journey state's empty stand-ins; tests read those lists as text) in this engine's spelling:
    varchar, double precision and uuid through the macros above, any other as it is. -#}
{% macro portable_type(type) -%}
    {%- set spelled = {'varchar': dbt.type_string(), 'double precision': type_double(), 'uuid': type_uuid()} -%}
    {{ return(spelled.get(type | lower, type)) }}
{%- endmacro %}
