-- Contact fields per resolved customer: from the customer's primary account (the
-- one whose id became the customer_id, else the earliest created), each empty
-- field filled from the customer's other accounts; email falls back to the latest
-- order email for customers with no CRM email.
with contacts as (
    select
        resolved.customer_id,
        contacts.email,
        contacts.phone,
        contacts.first_name,
        contacts.last_name,
        contacts.country,
        contacts.city,
        contacts.timezone,
        contacts.lead_source,
        contacts.birth_date,
        contacts.created_at,
        row_number() over (
            partition by resolved.customer_id
            order by
                case when contacts.customer_id = resolved.customer_id then 0 else 1 end,
                contacts.created_at asc nulls last, contacts.customer_id asc
        ) as preference
    from {{ ref('stg_crm__contacts') }} as contacts
    inner join {{ ref('int_accounts_resolved') }} as resolved on contacts.customer_id = resolved.account_id
),

merged as (
    select
        customer_id,
        coalesce(max(case when preference = 1 then email end), max(email)) as email,
        coalesce(max(case when preference = 1 then phone end), max(phone)) as phone,
        coalesce(max(case when preference = 1 then first_name end), max(first_name)) as first_name,
        coalesce(max(case when preference = 1 then last_name end), max(last_name)) as last_name,
        coalesce(max(case when preference = 1 then country end), max(country)) as country,
        coalesce(max(case when preference = 1 then city end), max(city)) as city,
        coalesce(max(case when preference = 1 then timezone end), max(timezone)) as timezone,
        coalesce(max(case when preference = 1 then lead_source end), max(lead_source)) as lead_source,
        coalesce(max(case when preference = 1 then birth_date end), max(birth_date)) as birth_date,
        min(created_at) as created_at
    from contacts
    group by customer_id
),

order_emails as (
    select customer_id, email
    from (
        select
            resolved.customer_id,
            orders.email,
            row_number() over (partition by resolved.customer_id order by orders.ordered_at desc) as nth
        from {{ ref('stg_commerce__orders') }} as orders
        inner join {{ ref('int_accounts_resolved') }} as resolved on orders.customer_id = resolved.account_id
        where orders.email is not null and orders.ordered_at < {{ as_of_cutoff() }}
    ) as ranked
    where nth = 1
),

customers as (
    select distinct customer_id from {{ ref('int_accounts_resolved') }}
)

select
    customers.customer_id,
    coalesce(merged.email, order_emails.email) as email,
    merged.phone,
    merged.first_name,
    merged.last_name,
    merged.country,
    merged.city,
    merged.timezone,
    merged.lead_source,
    merged.birth_date,
    merged.created_at
from customers
left join merged on customers.customer_id = merged.customer_id
left join order_emails on customers.customer_id = order_emails.customer_id
