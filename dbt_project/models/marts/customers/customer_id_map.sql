-- Every source id -> the resolved customer_id. Sources: crm (contact ids),
-- commerce (customer ids on orders), web (customer ids on events) and anonymous
-- (device/cookie ids stitched through a signup or login).
with accounts as (
    select account_id, customer_id, accounts_in_customer from {{ ref('int_accounts_resolved') }}
),

collected as (
    select account_id, in_crm, in_commerce, in_web from {{ ref('int_accounts_collected') }}
),

account_ids as (
    select 'crm' as source, collected.account_id as source_id from collected
    where collected.in_crm
    union all
    select 'commerce', collected.account_id from collected
    where collected.in_commerce
    union all
    select 'web', collected.account_id from collected
    where collected.in_web
),

final as (
    select
        account_ids.source,
        account_ids.source_id,
        accounts.customer_id,
        accounts.accounts_in_customer > 1 as is_merged
    from account_ids
    inner join accounts on account_ids.source_id = accounts.account_id
    union all
    select
        'anonymous' as source,
        stitched.anonymous_id as source_id,
        stitched.customer_id,
        accounts.accounts_in_customer > 1 as is_merged
    from {{ ref('int_anonymous_ids_stitched') }} as stitched
    inner join accounts on stitched.customer_id = accounts.account_id
)

select * from final
