{#- Statistics for experiment results, in portable SQL (only abs, least, exp, case and
    arithmetic), so the same models run on DuckDB and PostgreSQL. See docs/experiments.md. -#}

{#- Φ(−|z|), the lower tail of the standard normal distribution, by Hart's algorithm 5666
    (J. F. Hart et al., Computer Approximations, 1968, as given by G. West, "Better approximations
    to cumulative normal functions", Wilmott Magazine 2005): a rational function times
    exp(−z²/2) for |z| < 7.07, a continued fraction beyond, 0 past |z| = 37. Accurate to double
    precision (|error| < 1e-15; tests/dbt/test_experiments.py compares it with scipy), where the
    classic Abramowitz & Stegun 7.1.26 erf is only good to 1.5e-7, enough to flip the sixth
    decimal of a p-value. The exponent is clamped at 700 because PostgreSQL raises "underflow" where
    DuckDB returns 0. `z` is repeated in the output: pass a column or a simple expression. -#}
{% macro normal_lower_tail(z) -%}
    {%- set a = 'abs(cast(' ~ z ~ ' as ' ~ type_double() ~ '))' -%}
    (case
        when {{ a }} > 37 then 0.0
        when {{ a }} < 7.07106781186547
            then
                exp(-least({{ a }} * {{ a }} / 2, 700.0))
                * ((((((0.0352624965998911 * {{ a }} + 0.700383064443688) * {{ a }} + 6.37396220353165) * {{ a }} + 33.912866078383) * {{ a }} + 112.079291497871) * {{ a }} + 221.213596169931) * {{ a }} + 220.206867912376)
                / (((((((0.0883883476483184 * {{ a }} + 1.75566716318264) * {{ a }} + 16.064177579207) * {{ a }} + 86.7807322029461) * {{ a }} + 296.564248779674) * {{ a }} + 637.333633378831) * {{ a }} + 793.826512519948) * {{ a }} + 440.413735824752)
        else
            exp(-least({{ a }} * {{ a }} / 2, 700.0))
            / ({{ a }} + 1.0 / ({{ a }} + 2.0 / ({{ a }} + 3.0 / ({{ a }} + 4.0 / ({{ a }} + 0.65)))))
            / 2.506628274631
    end)
{%- endmacro %}

{#- Standard normal CDF Φ(z) (null in, null out). -#}
{% macro normal_cdf(z) -%}
    (case
        when cast({{ z }} as {{ type_double() }}) > 0 then 1.0 - {{ normal_lower_tail(z) }}
        else {{ normal_lower_tail(z) }}
    end)
{%- endmacro %}

{#- Two-sided p-value of a z statistic, 2 · Φ(−|z|) (no 1 − Φ cancellation). -#}
{% macro normal_two_sided_p(z) -%}
    (2.0 * {{ normal_lower_tail(z) }})
{%- endmacro %}

{#- Wilson score interval of a proportion `rate` of `n`, at critical value `z`: its centre and
    half width (good at small counts and rates near 0, unlike rate ± z·se). -#}
{% macro wilson_centre(rate, n, z) -%}
    ({{ rate }} + {{ z }} * {{ z }} / (2.0 * {{ n }})) / (1 + {{ z }} * {{ z }} / {{ n }})
{%- endmacro %}

{% macro wilson_half_width(rate, n, z) -%}
    {{ z }} * sqrt({{ rate }} * (1 - {{ rate }}) / {{ n }} + {{ z }} * {{ z }} / (4.0 * {{ n }} * {{ n }}))
    / (1 + {{ z }} * {{ z }} / {{ n }})
{%- endmacro %}

{#- Newcombe's hybrid score interval (method 10) of the difference `rate` − `baseline_rate` of two
    independent proportions, from each one's Wilson interval (wilson_centre ± wilson_half_width):
    it stays inside [−1, 1] and is sound with few or no converters, where a Wald interval collapses
    when an arm has 0 converters. Low: the difference less the arm's distance to its lower bound and
    the baseline's to its upper bound, in quadrature; high the other way round. -#}
{% macro newcombe_low(rate, rate_low, baseline_rate, baseline_high) -%}
    ({{ rate }} - {{ baseline_rate }}) - sqrt(
        power({{ rate }} - ({{ rate_low }}), 2)
        + power({{ baseline_high }} - {{ baseline_rate }}, 2)
    )
{%- endmacro %}

{% macro newcombe_high(rate, rate_high, baseline_rate, baseline_low) -%}
    ({{ rate }} - {{ baseline_rate }}) + sqrt(
        power({{ rate_high }} - {{ rate }}, 2)
        + power({{ baseline_rate }} - ({{ baseline_low }}), 2)
    )
{%- endmacro %}

{#- Pooled two-proportion z statistic of `difference` between two rates, from their pooled rate
    and 1/n1 + 1/n2; null when the pooled rate is 0 or 1 (both arms all 0 or all 1). -#}
{% macro pooled_z(difference, pooled_rate, inverse_reach_sum) -%}
    case
        when {{ pooled_rate }} > 0 and {{ pooled_rate }} < 1
            then ({{ difference }}) / sqrt({{ pooled_rate }} * (1 - {{ pooled_rate }}) * ({{ inverse_reach_sum }}))
    end
{%- endmacro %}

{#- The confidence level of experiment intervals and tests (var experiment_confidence_level),
    checked against the documented choices. -#}
{% macro experiment_confidence_level() -%}
    {%- set level = var('experiment_confidence_level', 0.95) | float | string -%}
    {%- if level not in experiment_critical_values() -%}
        {{ exceptions.raise_compiler_error(
            "var experiment_confidence_level must be one of "
            ~ (experiment_critical_values().keys() | join(', ')) ~ "; got '"
            ~ var('experiment_confidence_level') ~ "'") }}
    {%- endif -%}
    {{ return(level) }}
{%- endmacro %}

{#- Two-sided critical value z_{1 − α/2} for the configured confidence level (α = 1 − level):
    Φ⁻¹ has no closed form, so the documented levels carry their quantile (scipy.stats.norm.ppf,
    six decimals; tests/dbt/test_experiments.py checks them). -#}
{% macro experiment_z_critical() -%}
    {{ experiment_critical_values()[experiment_confidence_level()] }}
{%- endmacro %}

{% macro experiment_critical_values() -%}
    {{ return({
        '0.8': 1.281552,
        '0.9': 1.644854,
        '0.95': 1.959964,
        '0.975': 2.241403,
        '0.99': 2.575829,
        '0.995': 2.807034,
        '0.999': 3.290527,
    }) }}
{%- endmacro %}

{#- The largest degrees of freedom chi_square_upper_tail computes (an experiment of up to 20 arms);
    beyond it the p-value is null. -#}
{% macro chi_square_max_df() -%}
    {{ return(19) }}
{%- endmacro %}

{#- Q(df/2, x/2) = P(χ²_df ≥ x), the upper tail of the chi-square distribution with `df` (a whole
    number 1..chi_square_max_df()) degrees of freedom, by the closed forms of the regularised upper
    incomplete gamma function at whole and half-whole shapes (Abramowitz & Stegun 26.4.4-5),
    with y = x/2:
      even df = 2m:     Q = e^(−y) · Σ_{j<m} y^j / j!
      odd df = 2m + 1:  Q = erfc(√y) + e^(−y) · √y · (2/√π) · Σ_{j<m} y^j / ((3/2)(5/2)…(j + 1/2))
    erfc(√y) is 2Φ(−√x), Hart's normal tail above (normal_lower_tail), so odd df are as accurate as
    the normal p-values. Each sum is written out with its coefficients (Horner's scheme), all terms
    positive: no cancellation. tests/dbt/test_experiments.py compares it with scipy.stats.chi2.sf.
    Null for a null x, a df out of range, or x < 0; 0 past y = 700 (PostgreSQL's exp underflow). -#}
{% macro chi_square_upper_tail(x, df) -%}
    (case
        when cast({{ x }} as {{ type_double() }}) < 0 or {{ df }} < 1 or {{ df }} > {{ chi_square_max_df() }} then null
        when cast({{ x }} as {{ type_double() }}) > 1400 then 0.0
        {%- for k in range(1, chi_square_max_df() + 1) %}
            when {{ df }} = {{ k }} then {{ chi_square_tail_at(x, k) }}
        {%- endfor %}
    end)
{%- endmacro %}

{#- The upper tail at one whole `k` degrees of freedom (see chi_square_upper_tail): the sum's
    coefficients are worked out here, in Jinja, and written into the SQL with Horner's scheme. -#}
{% macro chi_square_tail_at(x, k) -%}
    {%- set y = '(cast(' ~ x ~ ' as ' ~ type_double() ~ ') / 2.0)' -%}
    {%- set ns = namespace(c=1.0, sql='') -%}
    {%- set coefficients = [] -%}
    {%- for j in range(k // 2) -%}
        {%- if j > 0 -%}{%- set ns.c = ns.c / (j if k % 2 == 0 else j + 0.5) -%}{%- endif -%}
        {%- do coefficients.append('%.17g' | format(ns.c)) -%}
    {%- endfor -%}
    {%- for c in coefficients | reverse -%}
        {%- set ns.sql = c if loop.first else c ~ ' + ' ~ y ~ ' * (' ~ ns.sql ~ ')' -%}
    {%- endfor -%}
    {%- if k % 2 == 0 -%}
        exp(-{{ y }}) * ({{ ns.sql }})
    {%- elif k == 1 -%}
        {{ normal_two_sided_p('sqrt(cast(' ~ x ~ ' as ' ~ type_double() ~ '))') }}
    {%- else -%}
        (
            {{ normal_two_sided_p('sqrt(cast(' ~ x ~ ' as ' ~ type_double() ~ '))') }}
            + exp(-{{ y }}) * sqrt({{ y }}) * 1.1283791670955126 * ({{ ns.sql }})
        )
    {%- endif -%}
{%- endmacro %}
