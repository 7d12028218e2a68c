{#- The journey state (schema tideline_journeys) is created by activation/journeys/store.py on the
    first tick, never by dbt (its DDL has a sequence and defaults). Models read it through
    `journey_state_relation(table)`: the source itself when it exists at execution time, else an
    empty select with the same columns and types, so a warehouse where no journey ever ticked
    builds. source() is called either way, so lineage shows the dependency.
    journey_state_columns() repeats the DDL's columns of every table dbt reads, all of them, in
    order and with the same types: tests/dbt/test_journey_marts.py compares the two, so a column
    added to one fails it until the other follows. -#}

{% macro journey_state_columns(table) -%}
    {%- set columns = {
        'versions': [
            ('journey', dbt.type_string()),
            ('version', dbt.type_string()),
            ('definition', dbt.type_string()),
            ('source', dbt.type_string()),
            ('first_seen_at', dbt.type_timestamp()),
        ],
        'journeys': [
            ('journey', dbt.type_string()),
            ('version', dbt.type_string()),
            ('status', dbt.type_string()),
            ('changed_at', dbt.type_timestamp()),
        ],
        'entries': [
            ('entry_id', dbt.type_string()),
            ('journey', dbt.type_string()),
            ('version', dbt.type_string()),
            ('customer_id', dbt.type_string()),
            ('trigger_id', dbt.type_string()),
            ('entered_at', dbt.type_timestamp()),
            ('holdout', dbt.type_boolean()),
            ('current_node', dbt.type_string()),
            ('node_entered_at', dbt.type_timestamp()),
            ('due_at', dbt.type_timestamp()),
            ('exited_at', dbt.type_timestamp()),
            ('exit_reason', dbt.type_string()),
            ('goal_until', dbt.type_timestamp()),
            ('converted_at', dbt.type_timestamp()),
            ('arm', dbt.type_string()),
            ('tick_id', dbt.type_string()),
        ],
        'steps': [
            ('seq', dbt.type_bigint()),
            ('entry_id', dbt.type_string()),
            ('journey', dbt.type_string()),
            ('version', dbt.type_string()),
            ('customer_id', dbt.type_string()),
            ('from_node', dbt.type_string()),
            ('to_node', dbt.type_string()),
            ('outcome', dbt.type_string()),
            ('reason', dbt.type_string()),
            ('tick_id', dbt.type_string()),
            ('moved_at', dbt.type_timestamp()),
        ],
        'ticks': [
            ('tick_id', dbt.type_string()),
            ('journey', dbt.type_string()),
            ('clock', dbt.type_timestamp()),
            ('started_at', dbt.type_timestamp()),
            ('finished_at', dbt.type_timestamp()),
            ('entered', dbt.type_bigint()),
            ('advanced', dbt.type_bigint()),
            ('sent', dbt.type_bigint()),
            ('skipped', dbt.type_bigint()),
            ('exited', dbt.type_bigint()),
            ('by_reason', dbt.type_string()),
            ('duration_seconds', 'double precision'),
            ('dry_run', dbt.type_boolean()),
        ],
        'tag_changes': [
            ('customer_id', dbt.type_string()),
            ('tag', dbt.type_string()),
            ('added', dbt.type_boolean()),
            ('journey', dbt.type_string()),
            ('entry_id', dbt.type_string()),
            ('changed_at', dbt.type_timestamp()),
        ],
    } -%}
    {%- if table not in columns -%}
        {{ exceptions.raise_compiler_error("journey_state_relation: unknown journey state table '" ~ table ~ "'") }}
    {%- endif -%}
    {{ return(columns[table]) }}
{%- endmacro %}

{% macro journey_state_relation(table) -%}
    {{ python_owned_relation('tideline_journeys', table, journey_state_columns(table)) }}
{%- endmacro %}

{#- The delivery ledger key of a journey's message (activation/planner.py, row_message_key_sql):
    the first 128 bits of sha256(destination|segment|customer|campaign:content_version:entry_id),
    as the 32 hex digits of fct_messages.message_key without its dashes. The arguments are SQL
    expressions. tests/dbt/test_journey_marts.py writes ledger keys with the planner's own SQL and
    checks every message is found through this. -#}
{% macro journey_message_key_hex(destination, segment, customer_id, campaign, content_version, entry_id) -%}
    substr(
        {{ sha256_hex("concat_ws('|', " ~ destination ~ ", " ~ segment ~ ", " ~ customer_id ~ ", "
            ~ campaign ~ " || ':' || " ~ content_version ~ " || ':' || " ~ entry_id ~ ")") }},
        1, 32
    )
{%- endmacro %}

{#- Lower-case hex sha256 of a text expression. -#}
{% macro sha256_hex(expression) -%}
    {{ return(adapter.dispatch('sha256_hex', 'tideline')(expression)) }}
{%- endmacro %}

{% macro default__sha256_hex(expression) -%}
    sha256({{ expression }})
{%- endmacro %}

{% macro postgres__sha256_hex(expression) -%}
    encode(sha256(convert_to({{ expression }}, 'UTF8')), 'hex')
{%- endmacro %}

{% macro spark__sha256_hex(expression) -%}
    sha2({{ expression }}, 256)
{%- endmacro %}
