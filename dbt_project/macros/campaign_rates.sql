{#- The campaign rates, each defined once as one count column over another: (numerator,
    denominator, channels it exists on; none = every channel). fct_campaign_performance computes
    them per send day and campaign_alert_rates over the alert window, both with campaign_rate(),
    so a rate means the same wherever it is read. Opens are seen by the email pixel only, so the
    rates built on opens are null for SMS and push. -#}
{% macro campaign_rates() -%}
    {{ return({
        'delivery_rate': ('delivered', 'sent', none),
        'delivery_failure_rate': ('failed_or_bounced', 'attempted', none),
        'bounce_rate': ('bounced', 'sent', none),
        'open_rate': ('unique_opens', 'delivered', 'email'),
        'click_rate': ('unique_clicks', 'delivered', none),
        'click_to_open_rate': ('unique_clicks', 'unique_opens', 'email'),
        'unsubscribe_rate': ('unsubscribes', 'delivered', none),
        'complaint_rate': ('complaints', 'delivered', none),
        'conversion_rate': ('converters', 'sent', none),
        'revenue_per_message': ('revenue', 'sent', none),
    }) }}
{%- endmacro %}

{#- The SQL of one rate over the count columns in scope (and `channel`); null when its
    denominator is 0 or the channel has no such signal. -#}
{% macro campaign_rate(name) -%}
    {%- set rates = campaign_rates() -%}
    {%- if name not in rates -%}
        {{ exceptions.raise_compiler_error(
            "campaign_rate: unknown rate '" ~ name ~ "' (known: " ~ (rates.keys() | join(', ')) ~ ")") }}
    {%- endif -%}
    {%- set numerator, denominator, only_channel = rates[name] -%}
    {%- if only_channel is none -%}
        {{ share(numerator, denominator) }}
    {%- else -%}
        case when channel = '{{ only_channel }}' then {{ share(numerator, denominator) }} end
    {%- endif -%}
{%- endmacro %}
