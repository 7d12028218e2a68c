{#- Incremental models that equal a full rebuild (docs/scaling.md, "Incremental models").

    One rule for every incremental model here: a pre-hook deletes the rows of the model that may
    be stale, and the model's SQL then inserts every row of its input that the model lacks
    (incremental_strategy append). Whatever was not deleted is still right, whatever was deleted
    or never there is computed again from the whole input, so an incremental build equals a full
    one as long as the delete catches every row whose inputs changed. What changed is read from the
    landing loader's history (landing.loads: one row per file a run loaded, replaced, appended to
    or removed) since the model's own watermark: the latest landing.loads.loaded_at the model has
    seen, kept in a one-row table next to the model (<model>__incremental_state: a table of its
    own, so models built in parallel never write the same table) by a post-hook (DuckDB has one writer, so
    no load can commit between the build and the post-hook). A model without a watermark (its first
    incremental build after an upgrade) treats every file as changed.

    The SQL is portable (no DuckDB-only syntax): `is distinct from`, `not exists`, `union`,
    dbt.type_timestamp(). `dbt build --full-refresh` (`tideline run --full-refresh`) rebuilds the
    models whole, and a change of a model's SQL needs it, as for any dbt incremental model. -#}

{#- The materialisation of these models: `incremental` where the engine can delete rows from a
    table (DuckDB, PostgreSQL), `table` on Spark: the pre-hook's `delete` needs a table format with
    row-level deletes (Delta, Iceberg), and a session's parquet/hive tables have none; dbt-spark's
    `insert_overwrite` replaces whole partitions, which is not this rule (a changed file's rows are
    spread over every partition). So on Spark each build computes the four models whole, and
    their state hooks do nothing. -#}
{% macro incremental_materialization() -%}
    {{ return(adapter.dispatch('incremental_materialization', 'tideline')()) }}
{%- endmacro %}

{% macro default__incremental_materialization() -%}
    {{ return('incremental') }}
{%- endmacro %}

{% macro spark__incremental_materialization() -%}
    {{ return('table') }}
{%- endmacro %}

{% macro incremental_state_relation() -%}
    {{ return(api.Relation.create(database=this.database, schema=this.schema, identifier=this.identifier ~ '__incremental_state')) }}
{%- endmacro %}

{#- Pre-hook: the model's state table exists. -#}
{% macro incremental_state_create() -%}
{%- if incremental_materialization() == 'incremental' -%}
    create table if not exists {{ incremental_state_relation() }} (
        landing_loaded_through {{ dbt.type_timestamp() }}
    )
{%- else -%}
    select 1 as no_incremental_state
{%- endif -%}
{%- endmacro %}

{#- Post-hooks (two statements): the model's watermark is the latest landing load now. -#}
{% macro incremental_state_clear() -%}
{%- if incremental_materialization() == 'incremental' -%}
    delete from {{ incremental_state_relation() }}
{%- else -%}
    select 1 as no_incremental_state
{%- endif -%}
{%- endmacro %}

{% macro incremental_state_record() -%}
{%- if incremental_materialization() == 'incremental' -%}
    insert into {{ incremental_state_relation() }} (landing_loaded_through)
    select max(loads.loaded_at) from {{ source('landing', 'loads') }} as loads
{%- else -%}
    select 1 as no_incremental_state
{%- endif -%}
{%- endmacro %}

{#- The landing files of `entity` whose rows changed since this model's watermark: loaded, replaced,
    appended to or removed since then (every file when there is no watermark), and every file the
    model holds rows of that the landing manifest no longer lists (a file removed by a landing
    full refresh leaves no history row). A subquery of `_file` values. -#}
{% macro changed_landing_files(entity) -%}
    (
        select loads._file
        from {{ source('landing', 'loads') }} as loads
        where
            loads.entity = '{{ entity }}'
            and loads.loaded_at > coalesce(
                (select max(state.landing_loaded_through) from {{ incremental_state_relation() }} as state),
                cast('1900-01-01 00:00:00' as {{ dbt.type_timestamp() }})
            )
        union
        select built._file
        from {{ this }} as built
        where built._file not in (
            select files._file
            from {{ source('landing', 'files') }} as files
            where files.entity = '{{ entity }}'
        )
    )
{%- endmacro %}

{#- Pre-hook of a base model over a landing table (one row per landing row, keyed by _file, _row):
    delete the rows of changed files; with `key` (the model's column that rows are deduplicated
    by) and `landing_key` (the landing column it is parsed from, blank meaning none), also every row sharing a
    key with a changed row, old or new, since which row wins may have moved; and the rows that
    `erased` (a not_erased(...) condition over the model's columns) no longer keeps. -#}
{% macro landing_incremental_delete(entity, landing_relation, erased, key=none, landing_key=none) -%}
{%- if is_incremental() %}
    delete from {{ this }}
    where
        _file in {{ changed_landing_files(entity) }}
        {%- if key is not none %}
            or {{ key }} in (
                select {{ nullif_blank('landing_rows.' ~ landing_key) }}
                from {{ landing_relation }} as landing_rows
                where landing_rows._file in {{ changed_landing_files(entity) }}
                union
                select built.{{ key }}
                from {{ this }} as built
                where built._file in {{ changed_landing_files(entity) }}
            )
        {%- endif %}
        or not {{ erased }}
{%- else %}
    select 1 as nothing_to_delete
{%- endif %}
{%- endmacro %}

{#- Condition on a base model's landing rows: in an incremental build only the landing rows the
    model lacks (the rows the pre-hook deleted, new rows, and erased rows that the model's filter
    drops again); every row in a full build. -#}
{% macro landing_row_not_built(landing_alias) -%}
    {%- if is_incremental() -%}
        not exists (
            select 1 from {{ this }} as built
            where built._file = {{ landing_alias }}._file and built._row = {{ landing_alias }}._row
        )
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}

{#- Pre-hook of int_events_stitched (one row per event_id). Deleted, to be stitched again: the
    events of landing files that changed since the last build and every event_id of a changed file
    now (its surviving duplicate may sit in an unchanged file); events at or after the as-of cutoff
    (the as-of date moved back; when it moves on, the newly included events are simply missing and
    get inserted); events now erased; and every event whose resolution changed: its customer
    computed again from the current int_accounts_resolved and int_anonymous_ids_stitched differs
    from the one stored (a new identity link or merge re-attributes old events). A table built
    before the model was incremental (without source_customer_id and _file: events_stitched_upgrade
    adds them) is emptied and filled again. -#}
{% macro events_stitched_incremental_delete() -%}
{%- if is_incremental() and events_stitched_has_columns() %}
    delete from {{ this }}
    where
        _file in {{ changed_landing_files('events') }}
        or event_id in (
            select events.event_id
            from {{ ref('stg_events__events') }} as events
            where events._file in {{ changed_landing_files('events') }}
        )
        or occurred_at >= {{ as_of_cutoff() }}
        or not {{ not_erased(customer_id='source_customer_id', anonymous_id='anonymous_id') }}
        or event_id in (
            select built.event_id
            from {{ this }} as built
            left join {{ ref('int_accounts_resolved') }} as direct
                on built.source_customer_id = direct.account_id
            left join {{ ref('int_anonymous_ids_stitched') }} as stitched
                on built.anonymous_id = stitched.anonymous_id
            where
                coalesce(direct.customer_id, stitched.customer_id) is distinct from built.customer_id
                or (direct.customer_id is null and stitched.customer_id is not null) != built.is_stitched
        )
{%- elif is_incremental() %}
    delete from {{ this }}
{%- else %}
    select 1 as nothing_to_delete
{%- endif %}
{%- endmacro %}

{% macro events_stitched_has_columns() -%}
    {%- set built_columns = adapter.get_columns_in_relation(this) | map(attribute='name') | list -%}
    {{ return('source_customer_id' in built_columns and '_file' in built_columns) }}
{%- endmacro %}

{#- Pre-hook of int_events_stitched before the delete: a table built when the model was a plain
    table gets the columns the incremental delete needs (left empty: the delete then empties it). -#}
{% macro events_stitched_upgrade(column_name) -%}
{%- if is_incremental() and not events_stitched_has_columns() %}
    alter table {{ this }} add column {{ column_name }} {{ dbt.type_string() }}
{%- else %}
    select 1 as nothing_to_add
{%- endif %}
{%- endmacro %}
