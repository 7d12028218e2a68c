{#- Email: trimmed and lower-cased; null when blank. -#}
{% macro normalise_email(expr) -%}
    lower({{ nullif_blank(expr) }})
{%- endmacro %}

{#- (`\s`, not the POSIX class [:space:], which Java's regex engine on Spark reads as letters) -#}
{% macro is_valid_email(expr) -%}
    {{ regexp_like(expr, '^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$') }}
{%- endmacro %}

{#- Phone digits: the raw phone without spaces, dashes, dots, slashes and parentheses. -#}
{% macro phone_compact(expr) -%}
    {{ regexp_replace_all('trim(' ~ expr ~ ')', '[\\s()./-]', '') }}
{%- endmacro %}

{#- E.164 candidate from a compact phone and the country's dialling rules
    (seed country_calling_codes). Validity is checked separately. -#}
{% macro phone_e164(compact, calling_code, trunk_prefix, national_digits) -%}
    case
        when {{ compact }} like '+%' then {{ compact }}
        when {{ compact }} like '00%' then '+' || substr({{ compact }}, 3)
        when {{ trunk_prefix }} is not null and {{ compact }} like {{ trunk_prefix }} || '%'
            then '+' || {{ calling_code }} || substr({{ compact }}, length({{ trunk_prefix }}) + 1)
        when {{ national_digits }} is not null and length({{ compact }}) = {{ national_digits }}
            then '+' || {{ calling_code }} || {{ compact }}
        when
            {{ national_digits }} is not null
            and length({{ compact }}) = {{ national_digits }} + length({{ calling_code }})
            and {{ compact }} like {{ calling_code }} || '%'
            then '+' || {{ compact }}
    end
{%- endmacro %}

{% macro is_valid_e164(expr) -%}
    {{ regexp_like(expr, '^\\+[1-9][0-9]{7,14}$') }}
{%- endmacro %}
