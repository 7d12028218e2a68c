-- The latest consent event per resolved customer and channel up to the as-of date
-- (latest consented_at wins; on a tie, the later file and row).
with ranked as (
    select
        resolved.customer_id,
        consents.channel,
        consents.is_granted,
        consents.consented_at,
        consents.consent_source,
        row_number() over (
            partition by resolved.customer_id, consents.channel
            order by consents.consented_at desc, consents._file desc, consents._row desc
        ) as nth
    from {{ ref('stg_crm__consents') }} as consents
    inner join {{ ref('int_accounts_resolved') }} as resolved on consents.customer_id = resolved.account_id
    where consents.consented_at < {{ as_of_cutoff() }}
)

select customer_id, channel, is_granted, consented_at, consent_source
from ranked
where nth = 1
