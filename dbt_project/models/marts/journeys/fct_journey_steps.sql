-- Grain: one row per node transition of a journey entry (the tick's step log) up to the as-of
-- date, with the time until the entry's next transition and, for a send, the ledger message.
with steps as (
    select * from {{ ref('stg_tideline_journeys__steps') }}
    where stepped_at < {{ as_of_cutoff() }}
),

entries as (
    select entry_id, is_holdout from {{ ref('stg_tideline_journeys__entries') }}
    where entered_at < {{ as_of_cutoff() }}
),

sequenced as (
    select
        steps.*,
        entries.is_holdout,
        row_number() over (partition by steps.entry_id order by steps.step_seq) as step_number,
        lead(steps.stepped_at) over (partition by steps.entry_id order by steps.step_seq) as next_stepped_at
    from steps
    inner join entries on steps.entry_id = entries.entry_id
),

-- Transitions that move an entry from one node on to another node (not a deferral that keeps it
-- at the node, not an exit).
moves_on as (
    select entry_id, step_seq, from_node, stepped_at
    from sequenced
    where from_node is not null and to_node is not null and from_node <> to_node
),

-- Each arrival at a node, and the transition that took the entry on to another node from there.
arrivals_left as (
    select
        arrivals.step_seq,
        min(moves_on.step_seq) as left_seq
    from sequenced as arrivals
    inner join moves_on
        on
            arrivals.entry_id = moves_on.entry_id
            and arrivals.to_node = moves_on.from_node
            and arrivals.step_seq < moves_on.step_seq
    where arrivals.to_node is not null and (arrivals.from_node is null or arrivals.from_node <> arrivals.to_node)
    group by arrivals.step_seq
),

node_stays as (
    select
        arrivals_left.step_seq,
        moves_on.stepped_at as moved_on_at
    from arrivals_left
    inner join moves_on on arrivals_left.left_seq = moves_on.step_seq
),

-- A journey's send is in the ledger as campaign `journey:<journey>`, content_version
-- `<version>:<step id>`, for the entry's customer. A customer who entered the same version
-- several times has several such sends of one step: the n-th 'sent' transition of a
-- (customer, journey, version, step) is paired with the n-th sent message of it.
sent_steps as (
    select
        step_seq,
        customer_id,
        'journey:' || journey as campaign,
        version || ':' || from_node as content_version,
        row_number() over (partition by customer_id, journey, version, from_node order by step_seq) as nth
    from sequenced
    where outcome = 'sent' and from_node is not null
),

journey_messages as (
    select
        message_key,
        channel,
        customer_id,
        campaign,
        content_version,
        row_number() over (
            partition by customer_id, campaign, content_version order by sent_at, message_key
        ) as nth
    from {{ ref('fct_messages') }}
    where is_sent and campaign like 'journey:%'
),

sent_messages as (
    select
        sent_steps.step_seq,
        journey_messages.message_key,
        journey_messages.channel
    from sent_steps
    inner join journey_messages
        on
            sent_steps.customer_id = journey_messages.customer_id
            and sent_steps.campaign = journey_messages.campaign
            and sent_steps.content_version = journey_messages.content_version
            and sent_steps.nth = journey_messages.nth
),

final as (
    select
        sequenced.step_seq,
        sequenced.entry_id,
        sequenced.journey,
        sequenced.version,
        sequenced.customer_id,
        sequenced.is_holdout,
        sequenced.step_number,
        sequenced.from_node,
        sequenced.to_node,
        sequenced.outcome,
        sequenced.reason,
        sequenced.tick_id,
        sequenced.stepped_at,
        {{ dbt.datediff('sequenced.stepped_at', 'sequenced.next_stepped_at', 'second') }} as seconds_to_next,
        {{ dbt.datediff('sequenced.stepped_at', 'node_stays.moved_on_at', 'second') }} as seconds_to_next_node,
        sent_messages.message_key,
        sent_messages.channel
    from sequenced
    left join node_stays on sequenced.step_seq = node_stays.step_seq
    left join sent_messages on sequenced.step_seq = sent_messages.step_seq
)

select * from final
