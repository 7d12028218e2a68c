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

{#- ml.channel_removal_effects (models_ml/attribution.py REMOVAL_EFFECT_COLUMNS), read by
    fct_attribution's data_driven model, which falls back to linear while it is empty. -#}
{% macro ml_removal_effect_columns() -%}
    {{ return([
        ('channel', 'varchar'),
        ('removal_effect', 'double precision'),
        ('removal_share', 'double precision'),
        ('paths', 'bigint'),
        ('converting_paths', 'bigint'),
        ('as_of_date', 'date'),
        ('computed_at', 'timestamp'),
    ]) }}
{%- endmacro %}

{#- on-run-start: the schema and both tables, one statement each (Spark runs one per call). -#}
{% macro create_ml_tables() -%}
    {%- if execute -%}
        {%- do run_query('create schema if not exists ml') -%}
        {%- do run_query(create_ml_table('customer_scores')) -%}
        {%- do run_query(create_ml_table('channel_removal_effects')) -%}
    {%- endif -%}
    select 1 as ml_tables_created
{%- endmacro %}

{% macro create_ml_table(name) -%}
    {%- set columns = ml_score_columns() if name == 'customer_scores' else ml_removal_effect_columns() -%}
    create table if not exists ml.{{ name }} (
        {%- for column, type in columns %}
            {{ column }} {{ portable_type(type) }}{% if not loop.last %},{% endif %}
        {%- endfor %}
    )
{%- endmacro %}
