{#- Marketing channel of a web session from its (lower-cased) utm_source and utm_medium.
    The mapping is documented in docs/attribution.md; add mediums here. -#}
{% macro utm_channel(source, medium) -%}
    case
        when
            {{ medium }} in ('cpc', 'ppc', 'paid', 'paidsearch', 'paid_search', 'sem')
            and {{ source }} in ({{ paid_social_sources() }})
            then 'paid_social'
        when {{ medium }} in ('cpc', 'ppc', 'paid', 'paidsearch', 'paid_search', 'sem') then 'paid_search'
        when {{ medium }} in ('paid_social', 'paidsocial', 'social_paid', 'social-paid') then 'paid_social'
        when {{ medium }} in ('display', 'banner', 'cpm') then 'display'
        when {{ medium }} in ('email', 'e-mail', 'newsletter') then 'email'
        when {{ medium }} = 'sms' then 'sms'
        when {{ medium }} = 'push' then 'push'
        when {{ medium }} in ('social', 'social-network', 'social_network', 'social-media', 'sm', 'organic_social')
            then 'social'
        when {{ medium }} = 'affiliate' then 'affiliate'
        when {{ medium }} = 'referral' then 'referral'
        when {{ medium }} in ('organic', 'seo') then 'organic_search'
        else 'other'
    end
{%- endmacro %}

{#- Sources whose paid clicks are paid social rather than paid search. -#}
{% macro paid_social_sources() -%}
    'facebook', 'fb', 'instagram', 'meta', 'tiktok', 'linkedin', 'twitter', 'x', 'pinterest', 'snapchat'
{%- endmacro %}

{#- The attribution models: their one declaration (name and label), in display order.
    fct_attribution computes one weight column w_<model> per entry and emits the models in
    this list; channel_roi and the weights test loop over it; marts.attribution_models
    publishes it (model, label, display_order) for the report and BI tools. -#}
{% macro attribution_models() -%}
    {{ return([
        {'model': 'first_touch', 'label': 'First touch'},
        {'model': 'last_touch', 'label': 'Last touch'},
        {'model': 'linear', 'label': 'Linear'},
        {'model': 'time_decay', 'label': 'Time decay'},
        {'model': 'position_based', 'label': 'Position based (40/20/40)'},
        {'model': 'data_driven', 'label': 'Data-driven (Markov)'},
    ]) }}
{%- endmacro %}
