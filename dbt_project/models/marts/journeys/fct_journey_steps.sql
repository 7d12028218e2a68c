-- Grain: one row per node transition of a journey entry (the tick's step log) up to the as-of
-- date, with the time until the entry's next transition and, for a send, its ledger message.
with steps as (
    select * from {{ ref('stg_tideline_journeys__steps') }}
    where moved_at < {{ as_of_cutoff() }}
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
        lead(steps.moved_at) over (partition by steps.entry_id order by steps.step_seq) as next_moved_at
    from steps
    inner join entries on steps.entry_id = entries.entry_id
),

-- Transitions that move an entry from one node on to another node (not a deferral that keeps it
-- at the node, not an exit).
moves_on as (
    select entry_id, step_seq, from_node, moved_at
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
        moves_on.moved_at as moved_on_at
    from arrivals_left
    inner join moves_on on arrivals_left.left_seq = moves_on.step_seq
),

-- A journey's send is a ledger message of campaign `journey:<journey>`, content version
-- `<version>:<step>`, sync `journey__<journey>__<step>__<destination>`, whose key the planner
-- derives from the entry id: the transition that resolved the delivery (sent, skipped, failed; the
-- first one out of the step, as a loop back to it sends nothing again) finds its message by that key.
deliveries as (
    select
        step_seq,
        entry_id,
        customer_id,
        'journey:' || journey as campaign,
        version || ':' || from_node as content_version,
        'journey__' || journey || '__' || from_node as segment,
        row_number() over (partition by entry_id, from_node order by step_seq) as visit
    from sequenced
    where outcome in ('sent', 'skipped', 'failed') and from_node is not null
),

journey_messages as (
    select
        message_key,
        sync_key,
        customer_id,
        campaign,
        content_version,
        channel,
        status
    from {{ ref('fct_messages') }}
    where campaign like 'journey:%'
),

delivery_messages as (
    select
        deliveries.step_seq,
        journey_messages.message_key,
        journey_messages.channel,
        journey_messages.status as message_status
    from deliveries
    inner join journey_messages
        on
            deliveries.customer_id = journey_messages.customer_id
            and deliveries.campaign = journey_messages.campaign
            and deliveries.content_version = journey_messages.content_version
            and substr(journey_messages.sync_key, 1, length(deliveries.segment) + 2) = deliveries.segment || '__'
    where
        deliveries.visit = 1
        and replace(journey_messages.message_key, '-', '') = {{ journey_message_key_hex(
            'substr(journey_messages.sync_key, length(deliveries.segment) + 3)',
            'deliveries.segment', 'deliveries.customer_id', 'deliveries.campaign',
            'deliveries.content_version', 'deliveries.entry_id'
        ) }}
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
        sequenced.moved_at,
        {{ dbt.datediff('sequenced.moved_at', 'sequenced.next_moved_at', 'second') }} as seconds_to_next,
        {{ dbt.datediff('sequenced.moved_at', 'node_stays.moved_on_at', 'second') }} as seconds_to_next_node,
        delivery_messages.message_key,
        delivery_messages.channel,
        delivery_messages.message_status
    from sequenced
    left join node_stays on sequenced.step_seq = node_stays.step_seq
    left join delivery_messages on sequenced.step_seq = delivery_messages.step_seq
)

select * from final
