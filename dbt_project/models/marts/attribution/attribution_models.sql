-- The attribution models of fct_attribution, as declared once by the macro attribution_models():
-- name, label for reports, display order.
with models as (
    {%- for m in attribution_models() %}
        select
            '{{ m.model }}' as model,
            '{{ m.label | replace("'", "''") }}' as label,
            {{ loop.index }} as display_order
        {%- if not loop.last %}
            union all
        {%- endif %}
    {%- endfor %}
),

final as (
    select
        cast(model as {{ dbt.type_string() }}) as model,
        cast(label as {{ dbt.type_string() }}) as label,
        cast(display_order as {{ dbt.type_int() }}) as display_order
    from models
)

select model, label, display_order
from final
