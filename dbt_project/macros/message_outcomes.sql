{#- What happened to one sent message, as aggregates over its engagement `events` (a grouped
    select per message_key): bounced, hard_bounced, opened (a human open or click: images may be
    blocked), bot_opens, clicked, unsubscribed, complained. fct_campaign_performance and
    launch_gate_rates both count messages with it, so a pilot gate judges the rates the campaign
    report shows. -#}
{% macro message_outcome_columns(events) -%}
    max(case when {{ events }}.event_type = 'bounced' then 1 else 0 end) as bounced,
    max(case when {{ events }}.event_type = 'bounced' and {{ events }}.bounce_type = 'hard' then 1 else 0 end)
        as hard_bounced,
    max(case when {{ events }}.event_type in ('opened', 'clicked') and {{ events }}.is_human then 1 else 0 end)
        as opened,
    sum(case when {{ events }}.event_type = 'opened' and {{ events }}.is_bot then 1 else 0 end) as bot_opens,
    max(case when {{ events }}.event_type = 'clicked' and {{ events }}.is_human then 1 else 0 end) as clicked,
    max(case when {{ events }}.event_type = 'unsubscribed' then 1 else 0 end) as unsubscribed,
    max(case when {{ events }}.event_type = 'complained' then 1 else 0 end) as complained
{%- endmacro %}
