{#- Cross-database parsing helpers. Landing columns arrive as text; these turn
    text into typed values, giving null (never an error) for text that does not
    parse, so staging can report the row instead of failing the build. -#}

{% macro regexp_like(expr, pattern) -%}
    {{ return(adapter.dispatch('regexp_like', 'tideline')(expr, pattern)) }}
{%- endmacro %}

{% macro default__regexp_like(expr, pattern) -%}
    regexp_matches({{ expr }}, '{{ pattern }}')
{%- endmacro %}

{% macro postgres__regexp_like(expr, pattern) -%}
    ({{ expr }} ~ '{{ pattern }}')
{%- endmacro %}

{#- Spark reads a backslash in a string literal as an escape: doubled, the regex gets it. -#}
{% macro spark__regexp_like(expr, pattern) -%}
    regexp_like({{ expr }}, '{{ pattern | replace('\\', '\\\\') }}')
{%- endmacro %}

{#- Every match of `pattern` in `expr` replaced: the 'g' flag on DuckDB and PostgreSQL; Spark's
    regexp_replace replaces every match and takes no flags (a fourth argument is a position). -#}
{% macro regexp_replace_all(expr, pattern, replacement) -%}
    {{ return(adapter.dispatch('regexp_replace_all', 'tideline')(expr, pattern, replacement)) }}
{%- endmacro %}

{% macro default__regexp_replace_all(expr, pattern, replacement) -%}
    regexp_replace({{ expr }}, '{{ pattern }}', '{{ replacement }}', 'g')
{%- endmacro %}

{% macro spark__regexp_replace_all(expr, pattern, replacement) -%}
    regexp_replace({{ expr }}, '{{ pattern | replace('\\', '\\\\') }}', '{{ replacement }}')
{%- endmacro %}

{#- Blank text (empty or only spaces) becomes null. -#}
{% macro nullif_blank(expr) -%}
    nullif(trim({{ expr }}), '')
{%- endmacro %}

{#- ISO 8601 date or timestamp, with optional offset (none means UTC) -> UTC timestamp. -#}
{% macro parse_timestamp(expr) -%}
    {{ return(adapter.dispatch('parse_timestamp', 'tideline')(expr)) }}
{%- endmacro %}

{% macro default__parse_timestamp(expr) -%}
    case
        when {{ regexp_like('trim(' ~ expr ~ ')', '^[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]+)?)?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$') }}
            then timezone('UTC', try_cast(trim({{ expr }}) as timestamptz))
    end
{%- endmacro %}

{% macro postgres__parse_timestamp(expr) -%}
    case
        when {{ regexp_like('trim(' ~ expr ~ ')', '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])([ T]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\\.[0-9]+)?)?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$') }}
            then cast(trim({{ expr }}) as timestamptz) at time zone 'UTC'
    end
{%- endmacro %}

{#- Spark's timestamp is an instant shown in the session time zone (UTC in the profile); a cast
    reads the offset, and text that is no timestamp (2024-02-30) gives null (ANSI mode off). -#}
{% macro spark__parse_timestamp(expr) -%}
    case
        when {{ regexp_like('trim(' ~ expr ~ ')', '^[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]+)?)?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$') }}
            then cast(trim({{ expr }}) as timestamp)
    end
{%- endmacro %}

{#- Plain decimal number with a dot ("12.50", "-3", "1e3" is not accepted) -> numeric. -#}
{% macro parse_number(expr) -%}
    case
        when {{ regexp_like('trim(' ~ expr ~ ')', '^[+-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)$') }}
            then cast(trim({{ expr }}) as {{ dbt.type_numeric() }})
    end
{%- endmacro %}

{#- Whole number -> bigint. -#}
{% macro parse_integer(expr) -%}
    case
        when {{ regexp_like('trim(' ~ expr ~ ')', '^[+-]?[0-9]{1,18}(\\.0+)?$') }}
            then cast(cast(trim({{ expr }}) as {{ dbt.type_numeric() }}) as {{ dbt.type_bigint() }})
    end
{%- endmacro %}

{#- The reason a required number is unusable, or null when it is fine. -#}
{% macro number_issue(raw, parsed, field, allow_negative=false) -%}
    case
        when {{ nullif_blank(raw) }} is null then '{{ field }} is empty'
        when {{ parsed }} is null and {{ raw }} like '%,%'
            then '{{ field }} "' || {{ raw }} || '" is not a number (use a dot as decimal separator, no thousands separator)'
        when {{ parsed }} is null then '{{ field }} "' || {{ raw }} || '" is not a number'
        {%- if not allow_negative %}
            when {{ parsed }} < 0 then '{{ field }} ' || {{ raw }} || ' is negative'
        {%- endif %}
    end
{%- endmacro %}

{#- The reason a timestamp is unusable, or null when it is fine (or empty and optional). -#}
{% macro timestamp_issue(raw, parsed, field, required=true) -%}
    case
        {%- if required %}
            when {{ nullif_blank(raw) }} is null then '{{ field }} is empty'
        {%- endif %}
        when {{ nullif_blank(raw) }} is not null and {{ parsed }} is null
            then '{{ field }} "' || {{ raw }} || '" is not a timestamp (use ISO 8601, e.g. 2025-03-01T10:00:00Z)'
    end
{%- endmacro %}

{#- The reason a required id is unusable, or null. -#}
{% macro required_issue(raw, field) -%}
    case when {{ nullif_blank(raw) }} is null then '{{ field }} is empty' end
{%- endmacro %}
