-- Normalised emails and phones per account, from CRM contacts and from orders
-- (a guest checkout's email links it to the CRM contact with that email).
with contact_emails as (
    select customer_id as account_id, 'email' as key_type, email as key_value
    from {{ ref('stg_crm__contacts') }}
    where email is not null
),

contact_phones as (
    select customer_id as account_id, 'phone' as key_type, phone as key_value
    from {{ ref('stg_crm__contacts') }}
    where phone is not null
),

order_emails as (
    select customer_id as account_id, 'email' as key_type, email as key_value
    from {{ ref('stg_commerce__orders') }}
    where email is not null and ordered_at < {{ as_of_cutoff() }}
),

unioned as (
    select * from contact_emails
    union all
    select * from contact_phones
    union all
    select * from order_emails
)

select distinct unioned.account_id, unioned.key_type, unioned.key_value
from unioned
inner join {{ ref('int_accounts_collected') }} as accounts on unioned.account_id = accounts.account_id
