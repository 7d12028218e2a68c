-- Account id -> resolved customer_id. Accounts sharing a normalised email or phone
-- belong to one customer, transitively (connected components of the shared-key
-- graph). The customer_id is the account id of the component's first-seen account
-- (ties by id), so an account that merges with nothing keeps its own id and ids do
-- not change when newer accounts join. Keys shared by more than
-- `identity_max_accounts_per_key` accounts are placeholders and never merge.
-- The components are found in rounds of plain SQL that every engine runs
-- (macros/connected_components.sql: no recursive CTE, which Spark lacks).
{{ config(post_hook="{{ drop_connected_components() }}") }}

{%- set accounts_sql -%}
    select
        account_id,
        first_seen_at,
        row_number() over (order by first_seen_at asc nulls last, account_id asc) as node
    from {{ ref('int_accounts_collected') }}
{%- endset %}

{%- set edges_sql -%}
    with accounts as (
        {{ accounts_sql }}
    ),

    keys as (
        select keys.key_type, keys.key_value, accounts.node
        from {{ ref('int_account_keys_collected') }} as keys
        inner join accounts on keys.account_id = accounts.account_id
    ),

    shared_keys as (
        select key_type, key_value
        from keys
        group by key_type, key_value
        having count(*) between 2 and {{ var('identity_max_accounts_per_key') }}
    )

    select distinct a.node as src, b.node as dst
    from keys as a
    inner join shared_keys as s on a.key_type = s.key_type and a.key_value = s.key_value
    inner join keys as b on a.key_type = b.key_type and a.key_value = b.key_value and a.node <> b.node
{%- endset %}

with accounts as (
    {{ accounts_sql }}
),

components as (
    select node, label from {{ connected_components(edges_sql) }}
),

final as (
    select
        accounts.account_id,
        representative.account_id as customer_id,
        count(*) over (partition by representative.account_id) as accounts_in_customer
    from accounts
    left join components on accounts.node = components.node
    inner join accounts as representative on coalesce(components.label, accounts.node) = representative.node
)

select * from final
