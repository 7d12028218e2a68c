{#- The activation ledger (schema tideline_sync) is created by activation/ledger.py on the first
    sync, never by dbt (its DDL has a sequence, defaults and a migration check). Models read it
    through `sync_ledger_relation(table)`: the source itself when it exists at execution time,
    else an empty select with the same columns and types, so a fresh warehouse builds. source()
    is called either way, so lineage shows the dependency.
    sync_ledger_columns() repeats the DDL's columns of every table dbt reads, all of them, in
    order and with the same types: tests/dbt/test_sync_ledger.py compares the two, so a column
    added to one fails it until the other follows. -#}

{% macro sync_ledger_columns(table) -%}
    {%- set columns = {
        'delivery_log': [
            ('seq', dbt.type_bigint()),
            ('idempotency_key', 'uuid'),
            ('sync_key', dbt.type_string()),
            ('sync_id', dbt.type_string()),
            ('customer_id', dbt.type_string()),
            ('action', dbt.type_string()),
            ('status', dbt.type_string()),
            ('reason', dbt.type_string()),
            ('error', dbt.type_string()),
            ('attempt', dbt.type_int()),
            ('remote_id', dbt.type_string()),
            ('channel', dbt.type_string()),
            ('campaign', dbt.type_string()),
            ('variant', dbt.type_string()),
            ('content_version', dbt.type_string()),
            ('recorded_at', dbt.type_timestamp()),
            ('not_before', dbt.type_timestamp()),
            ('stage', dbt.type_string()),
        ],
        'sync_runs': [
            ('sync_id', dbt.type_string()),
            ('sync_key', dbt.type_string()),
            ('segment', dbt.type_string()),
            ('destination', dbt.type_string()),
            ('mode', dbt.type_string()),
            ('dry_run', dbt.type_boolean()),
            ('started_at', dbt.type_timestamp()),
            ('finished_at', dbt.type_timestamp()),
            ('segment_rows', dbt.type_bigint()),
            ('rejected_keys', dbt.type_bigint()),
            ('planned', dbt.type_bigint()),
            ('added', dbt.type_bigint()),
            ('changed', dbt.type_bigint()),
            ('removed', dbt.type_bigint()),
            ('sent', dbt.type_bigint()),
            ('skipped', dbt.type_bigint()),
            ('skipped_by_reason', dbt.type_string()),
            ('failed', dbt.type_bigint()),
            ('dead_letters', dbt.type_bigint()),
            ('unknown', dbt.type_bigint()),
            ('duration_seconds', 'double precision'),
            ('status', dbt.type_string()),
            ('launched_by', dbt.type_string()),
            ('campaign', dbt.type_string()),
            ('content_version', dbt.type_string()),
            ('launch_stage', dbt.type_string()),
        ],
        'launch_decisions': [
            ('decision_id', dbt.type_string()),
            ('sync_key', dbt.type_string()),
            ('campaign', dbt.type_string()),
            ('content_version', dbt.type_string()),
            ('stage', dbt.type_string()),
            ('decision', dbt.type_string()),
            ('metric', dbt.type_string()),
            ('value', 'double precision'),
            ('bound', 'double precision'),
            ('threshold', 'double precision'),
            ('sample', dbt.type_bigint()),
            ('variant', dbt.type_string()),
            ('detail', dbt.type_string()),
            ('decided_at', dbt.type_timestamp()),
            ('decided_by', dbt.type_string()),
        ],
    } -%}
    {%- if table not in columns -%}
        {{ exceptions.raise_compiler_error("sync_ledger_relation: unknown ledger table '" ~ table ~ "'") }}
    {%- endif -%}
    {{ return(columns[table]) }}
{%- endmacro %}

{% macro sync_ledger_relation(table) -%}
    {{ python_owned_relation('tideline_sync', table, sync_ledger_columns(table)) }}
{%- endmacro %}

{#- A table Python code creates (the ledger, the journey state), read by dbt: the source itself
    when it exists at execution time, else an empty select with the same `columns` (a list of
    (name, type)), so a fresh warehouse builds. source() is called either way (lineage). -#}
{% macro python_owned_relation(source_name, table, columns) -%}
    {%- set src = source(source_name, table) -%}
    {%- set found = none -%}
    {#- (asking for a table of a schema that does not exist is an error on Spark, not none) -#}
    {%- if execute and adapter.check_schema_exists(src.database, src.schema) -%}
        {%- set found = adapter.get_relation(database=src.database, schema=src.schema, identifier=src.identifier) -%}
    {%- endif -%}
    (
        select
        {%- for name, type in columns %}
            {% if found is none %}cast(null as {{ portable_type(type) }}){% else %}{{ name }}{% endif %} as {{ name }}
            {%- if not loop.last %},{% endif %}
        {%- endfor %}
        {%- if found is none %}
            where 1 = 0
        {%- else %}
            from {{ src }}
        {%- endif %}
    )
{%- endmacro %}
