-- Grain: one row per journey × version × node, plus one `(entry)` row per journey × version
-- (every entry, held-out ones included): how many entries reached the node, what it did
-- (sent, skipped, deferred, failed), who left the journey there and why, how long entries
-- stayed before moving on. Conversion and lift against the holdout: journey_lift.
with entries as (
    select * from {{ ref('fct_journey_entries') }}
),

steps as (
    select * from {{ ref('fct_journey_steps') }}
),

nodes as (
    select journey, version, node, min(depth) as node_depth
    from (
        select journey, version, to_node as node, step_number as depth
        from steps
        where to_node is not null
        union all
        select journey, version, from_node as node, cast(null as integer) as depth
        from steps
        where from_node is not null
        union all
        select journey, version, exit_node as node, cast(null as integer) as depth
        from entries
        where exit_node is not null and exit_node <> '(entry)'
    ) as seen
    group by journey, version, node
    union all
    select distinct journey, version, '(entry)' as node, 0 as node_depth
    from entries
),

-- Entries of the treatment that reached each node (a held-out entry takes no step).
reached as (
    select
        steps.journey,
        steps.version,
        steps.to_node as node,
        count(distinct steps.entry_id) as reached,
        count(distinct case when entries.converted then steps.entry_id end) as converted
    from steps
    inner join entries on steps.entry_id = entries.entry_id
    where steps.to_node is not null and not steps.is_holdout
    group by steps.journey, steps.version, steps.to_node
    union all
    select
        journey,
        version,
        '(entry)' as node,
        count(*) as reached,
        sum(case when converted then 1 else 0 end) as converted
    from entries
    group by journey, version
),

-- What each node did: the outcome of the transition that left it.
actions as (
    select
        journey,
        version,
        from_node as node,
        sum(case when outcome = 'sent' then 1 else 0 end) as sent,
        sum(case when outcome = 'skipped' then 1 else 0 end) as skipped,
        sum(case when outcome = 'deferred' then 1 else 0 end) as deferred,
        sum(case when outcome = 'failed' then 1 else 0 end) as failed
    from steps
    where from_node is not null
    group by journey, version, from_node
),

exits as (
    select
        journey,
        version,
        exit_node as node,
        count(*) as exited,
        sum(case when exit_reason = 'completed' then 1 else 0 end) as exited_completed,
        sum(case when exit_reason = 'converted' then 1 else 0 end) as exited_converted,
        sum(case when exit_reason = 'exit_condition' then 1 else 0 end) as exited_exit_condition,
        sum(case when exit_reason = 'holdout' then 1 else 0 end) as exited_holdout,
        sum(case when exit_reason = 'archived' then 1 else 0 end) as exited_archived
    from entries
    where exit_node is not null
    group by journey, version, exit_node
),

stays as (
    select
        journey,
        version,
        to_node as node,
        percentile_cont(0.5) within group (order by seconds_to_next_node) / 3600.0 as median_hours_to_next_node
    from steps
    where to_node is not null and seconds_to_next_node is not null and not is_holdout
    group by journey, version, to_node
),

final as (
    select
        nodes.journey,
        nodes.version,
        nodes.node,
        nodes.node_depth,
        coalesce(reached.reached, 0) as reached,
        coalesce(actions.sent, 0) as sent,
        coalesce(actions.skipped, 0) as skipped,
        coalesce(actions.deferred, 0) as deferred,
        coalesce(actions.failed, 0) as failed,
        coalesce(reached.converted, 0) as converted,
        coalesce(exits.exited, 0) as exited,
        coalesce(exits.exited_completed, 0) as exited_completed,
        coalesce(exits.exited_converted, 0) as exited_converted,
        coalesce(exits.exited_exit_condition, 0) as exited_exit_condition,
        coalesce(exits.exited_holdout, 0) as exited_holdout,
        coalesce(exits.exited_archived, 0) as exited_archived,
        cast(stays.median_hours_to_next_node as decimal(18, 4)) as median_hours_to_next_node,
        {{ as_of_date() }} as as_of_date
    from nodes
    left join reached
        on nodes.journey = reached.journey and nodes.version = reached.version and nodes.node = reached.node
    left join actions
        on nodes.journey = actions.journey and nodes.version = actions.version and nodes.node = actions.node
    left join exits
        on nodes.journey = exits.journey and nodes.version = exits.version and nodes.node = exits.node
    left join stays
        on nodes.journey = stays.journey and nodes.version = stays.version and nodes.node = stays.node
)

select * from final
