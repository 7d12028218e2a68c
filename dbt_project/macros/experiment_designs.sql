{#- The experiment designs (tideline_sync.experiment_designs) are recorded by the activation engine
    (activation/experiments.py owns the DDL), never by dbt. Models read them through
    `experiment_designs_relation()`: the table when it exists at execution time, else an empty
    select with the same columns and types, so a warehouse that never synced builds.
    experiment_design_columns() repeats the DDL's columns in order with the same types:
    tests/dbt/test_experiments.py compares the two. -#}

{% macro experiment_design_columns() -%}
    {{ return([
        ('campaign', dbt.type_string()),
        ('channel', dbt.type_string()),
        ('content_version', dbt.type_string()),
        ('arm', dbt.type_string()),
        ('expected_share', 'double precision'),
        ('recorded_at', dbt.type_timestamp()),
    ]) }}
{%- endmacro %}

{% macro experiment_designs_relation() -%}
    {{ python_owned_relation('tideline_experiments', 'experiment_designs', experiment_design_columns()) }}
{%- endmacro %}
