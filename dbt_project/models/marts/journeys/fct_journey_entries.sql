-- Grain: one row per journey entry that started by the end of the as-of date: its state on
-- that date (exit, conversion within the goal window, where it is or where it left) and what it
-- went through (nodes reached, messages sent).
with entries as (
    select * from {{ ref('stg_tideline_journeys__entries') }}
    where entered_at < {{ as_of_cutoff() }}
),

steps as (
    select * from {{ ref('fct_journey_steps') }}
),

step_counts as (
    select
        entry_id,
        count(distinct to_node) as steps_taken,
        sum(case when message_status = 'sent' then 1 else 0 end) as messages_sent
    from steps
    group by entry_id
),

-- The entry's latest transition (where it is now), and its latest one without a next node
-- (the transition it left the journey by).
latest_steps as (
    select
        entry_id,
        from_node,
        to_node,
        row_number() over (partition by entry_id order by step_seq desc) as recency
    from steps
),

latest_exits as (
    select
        entry_id,
        from_node,
        row_number() over (partition by entry_id order by step_seq desc) as recency
    from steps
    where to_node is null
),

as_of_state as (
    select
        entries.*,
        coalesce(entries.exited_at >= {{ as_of_cutoff() }}, true) as is_active,
        coalesce(
            entries.converted_at < {{ as_of_cutoff() }}
            and (entries.goal_until is null or entries.converted_at <= entries.goal_until),
            false
        ) as is_converted
    from entries
),

final as (
    select
        as_of_state.entry_id,
        as_of_state.journey,
        as_of_state.version,
        as_of_state.customer_id,
        as_of_state.trigger_id,
        as_of_state.entered_at,
        as_of_state.is_holdout,
        as_of_state.arm,
        as_of_state.is_active,
        case when as_of_state.is_active then latest_steps.to_node end as current_node,
        case when not as_of_state.is_active then as_of_state.exit_reason end as exit_reason,
        case when not as_of_state.is_active then as_of_state.exited_at end as exited_at,
        case
            when as_of_state.is_active then null
            when as_of_state.is_holdout then '(entry)'
            else coalesce(latest_exits.from_node, latest_steps.to_node, '(entry)')
        end as exit_node,
        as_of_state.goal_until,
        case when as_of_state.is_converted then as_of_state.converted_at end as converted_at,
        as_of_state.is_converted as converted,
        case
            when as_of_state.is_converted
                then {{ dbt.datediff('as_of_state.entered_at', 'as_of_state.converted_at', 'second') }} / 3600.0
        end as hours_to_conversion,
        coalesce(
            not as_of_state.is_converted and as_of_state.goal_until >= {{ as_of_cutoff() }},
            false
        ) as is_goal_window_open,
        coalesce(step_counts.steps_taken, 0) as steps_taken,
        coalesce(step_counts.messages_sent, 0) as messages_sent,
        {{ as_of_date() }} as as_of_date
    from as_of_state
    left join step_counts on as_of_state.entry_id = step_counts.entry_id
    left join latest_steps on as_of_state.entry_id = latest_steps.entry_id and latest_steps.recency = 1
    left join latest_exits on as_of_state.entry_id = latest_exits.entry_id and latest_exits.recency = 1
)

select * from final
