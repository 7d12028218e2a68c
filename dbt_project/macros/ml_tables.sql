{#- The tables the Python scoring asset writes (models_ml/scoring.py SCORE_COLUMNS), created
    empty when they do not exist yet, so the models reading them build before the first
    scoring run (tags from scores are then simply absent). -#}
{% macro ml_score_columns() -%}
    {{ return([
        ('customer_id', 'varchar'),
        ('churn_probability', 'double precision'),
        ('purchase_propensity', 'double precision'),
        ('expected_purchases', 'double precision'),
        ('p_alive', 'double precision'),
        ('predicted_clv', 'double precision'),
        ('scored_at', 'timestamp'),
        ('model_version', 'varchar'),
        ('as_of_date', 'date'),
    ]) }}
{%- endmacro %}

{% macro create_ml_tables() -%}
    create schema if not exists ml;
    create table if not exists ml.customer_scores (
        {%- for name, type in ml_score_columns() %}
        {{ name }} {{ type }}{% if not loop.last %},{% endif %}
        {%- endfor %}
    )
{%- endmacro %}
