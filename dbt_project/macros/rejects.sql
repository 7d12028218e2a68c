{#- One select per checked field of a base_ staging model: the rows where that
    field has an issue, in the shape of the `rejects` mart. `checks` is a list of
    (field, raw column, action) where action is row_rejected or field_cleared; the
    issue column is issue__<field> (issue__duplicate reports against `key`). -#}
{% macro reject_rows(model, entity, checks) -%}
    {%- for field, raw, action in checks %}
        select
            '{{ entity }}' as entity,
            _file as source_file,
            _row as source_row,
            '{{ field }}' as field,
            cast({{ raw }} as {{ dbt.type_string() }}) as value,
            {{ 'issue__duplicate' if action == 'duplicate' else 'issue__' ~ field }} as reason,
            '{{ 'row_rejected' if action == 'duplicate' else action }}' as action
        from {{ ref(model) }}
        where {{ 'issue__duplicate' if action == 'duplicate' else 'issue__' ~ field }} is not null
        {%- if not loop.last %}
            union all
        {%- endif %}
    {%- endfor %}
{%- endmacro %}
