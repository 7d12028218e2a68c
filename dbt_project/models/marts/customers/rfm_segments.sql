-- The RFM segment grid: one row per (r_score, fm_score) cell, 25 in all.
{%- set descriptions = rfm_segment_descriptions() %}
with cells as (
        {%- for r in range(1, 6) %}{% for fm in range(1, 6) %}
        select {{ r }} as r_score, {{ fm }} as fm_score
        {%- if not loop.last %} union all{% endif %}
    {%- endfor %}{% if not loop.last %} union all{% endif %}{% endfor %}
),

named as (
    select r_score, fm_score, {{ rfm_segment('r_score', 'fm_score') }} as rfm_segment
    from cells
)

select
    r_score,
    fm_score,
    rfm_segment,
    case rfm_segment
        {%- for name, text in descriptions.items() %}
            when '{{ name | replace("'", "''") }}' then '{{ text | replace("'", "''") }}'
        {%- endfor %}
    end as segment_description
from named
