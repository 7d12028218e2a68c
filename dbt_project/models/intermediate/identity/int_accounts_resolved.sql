-- Account id -> resolved customer_id. Accounts sharing a normalised email or phone
-- belong to one customer, transitively (connected components of the shared-key
-- graph). The customer_id is the account id of the component's first-seen account
-- (ties by id), so an account that merges with nothing keeps its own id and ids do
-- not change when newer accounts join. Keys shared by more than
-- `identity_max_accounts_per_key` accounts are placeholders and never merge.
with recursive accounts as (
    select
        account_id,
        first_seen_at,
        row_number() over (order by first_seen_at asc nulls last, account_id asc) as node
    from {{ ref('int_accounts_collected') }}
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
),

links as (
    select distinct a.node as src, b.node as dst
    from keys as a
    inner join shared_keys as s on a.key_type = s.key_type and a.key_value = s.key_value
    inner join keys as b on a.key_type = b.key_type and a.key_value = b.key_value and a.node <> b.node
),

reach (node, label) as (
    select distinct
        links.src as node,
        links.src as label
    from links
    union
    select links.dst, reach.label
    from reach
    inner join links on reach.node = links.src
),

components as (
    select node, min(label) as label
    from reach
    group by node
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
