{#- The staff notification state (schema tideline_staff) is created by activation/staff/store.py,
    never by dbt. Models read it through python_owned_relation with these columns (all of the
    notifications table's, in order, same types), so a warehouse where no notification run happened
    yet still builds. tests/unit/test_staff_config.py compares them with the DDL. -#}
{% macro staff_notification_columns() -%}
    {{ return([
        ('notification_id', dbt.type_string()),
        ('rule', dbt.type_string()),
        ('rule_kind', dbt.type_string()),
        ('customer_id', dbt.type_string()),
        ('event_key', dbt.type_string()),
        ('staff_id', dbt.type_string()),
        ('recipient', dbt.type_string()),
        ('route', dbt.type_string()),
        ('fell_back', dbt.type_boolean()),
        ('fallback_reason', dbt.type_string()),
        ('destination', dbt.type_string()),
        ('handle_kind', dbt.type_string()),
        ('message', dbt.type_string()),
        ('link', dbt.type_string()),
        ('via_digest', dbt.type_boolean()),
        ('digest_id', dbt.type_string()),
        ('occurred_at', dbt.type_timestamp()),
        ('created_at', dbt.type_timestamp()),
        ('due_at', dbt.type_timestamp()),
        ('status', dbt.type_string()),
        ('status_reason', dbt.type_string()),
        ('attempts', dbt.type_int()),
        ('idempotency_key', dbt.type_string()),
        ('sent_at', dbt.type_timestamp()),
        ('updated_at', dbt.type_timestamp()),
    ]) }}
{%- endmacro %}
