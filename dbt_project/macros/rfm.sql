{#- RFM scoring. A score is the quintile a customer's value falls in, taken from the
    share of customers whose value is strictly worse: score = 1 + floor(5 * (rank - 1) / n)
    with rank() ordered worst first. Ties share a score (ntile would split them at
    random), so a one-order customer never outscores another one-order customer. -#}
{% macro rfm_score(worst_first_order_by) -%}
    cast(1 + floor(5.0 * (rank() over (order by {{ worst_first_order_by }}) - 1) / count(*) over ()) as integer)
{%- endmacro %}

{#- FM: frequency and monetary combined, rounded half up. -#}
{% macro fm_score(f_score, m_score) -%}
    cast(floor(({{ f_score }} + {{ m_score }} + 1) / 2) as integer)
{%- endmacro %}

{#- The segment name for an R score and an FM score (both 1–5); covers all 25 cells. -#}
{% macro rfm_segment(r, fm) -%}
    case
        when {{ r }} = 5 and {{ fm }} >= 4 then 'Champions'
        when {{ r }} between 3 and 4 and {{ fm }} >= 4 then 'Loyal'
        when {{ r }} >= 4 and {{ fm }} between 2 and 3 then 'Potential Loyalist'
        when {{ r }} = 5 and {{ fm }} = 1 then 'New'
        when {{ r }} = 4 and {{ fm }} = 1 then 'Promising'
        when {{ r }} = 3 and {{ fm }} = 3 then 'Need Attention'
        when {{ r }} = 3 and {{ fm }} <= 2 then 'About to Sleep'
        when {{ r }} <= 2 and {{ fm }} = 5 then 'Can''t Lose'
        when {{ r }} <= 2 and {{ fm }} between 3 and 4 then 'At Risk'
        when {{ r }} = 1 and {{ fm }} = 1 then 'Lost'
        else 'Hibernating'
    end
{%- endmacro %}

{% macro rfm_segment_descriptions() -%}
    {{ return({
        'Champions': 'Bought recently, buy often and spend the most.',
        'Loyal': 'Buy regularly and spend well; not the very latest buyers.',
        'Potential Loyalist': 'Recent customers with average frequency and spend.',
        'New': 'Bought very recently, once or for little.',
        'Promising': 'Recent buyers who have not spent much yet.',
        'Need Attention': 'Average recency, frequency and spend.',
        'About to Sleep': 'Below-average recency and low frequency and spend.',
        "Can't Lose": 'Used to buy often and spend the most, but long ago.',
        'At Risk': 'Spent well and bought often, but long ago.',
        'Hibernating': 'Last bought long ago, little and rarely.',
        'Lost': 'Lowest recency, frequency and spend.',
    }) }}
{%- endmacro %}
