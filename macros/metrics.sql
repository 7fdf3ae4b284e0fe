{#-
    Each marketplace metric's formula, written once: every mart that shows the metric (the
    dashboard, the daily trend, the operational windows) calls the macro, so the same name
    always means the same computation. Arguments are column expressions.
-#}

{#- Errored invocations over all invocations; null when there were none. -#}
{% macro error_rate(errored_invocations, invocations) -%}
    cast({{ errored_invocations }} as numeric) / nullif({{ invocations }}, 0)
{%- endmacro %}


{#- The mean rating, from a sum and a count (so a window can add up days); null without ratings. -#}
{% macro avg_satisfaction(rating_sum, rating_count) -%}
    cast({{ rating_sum }} as numeric) / nullif({{ rating_count }}, 0)
{%- endmacro %}


{#-
    A response-time aggregate over invocation rows (`duration_ms`, `is_success`): completions
    only, as in the marketplace reference; an errored call's duration is not a response time.
    `percentile` is none for the mean, else the fraction (0.95 for p95, discrete percentile).
-#}
{% macro response_time_ms(percentile=none) -%}
    {%- if percentile is none -%}
        avg(duration_ms) filter (where is_success)
    {%- else -%}
        percentile_disc({{ percentile }}) within group (order by duration_ms)
        filter (where is_success)
    {%- endif -%}
{%- endmacro %}


{#-
    `response_time_ms` over the live rollup's duration bins (macros/operational_windows.sql
    `binned`: one row per outcome and bin of a window, with the bin's `invocations`,
    `duration_sum_ms`, `duration_min_ms`, `duration_max_ms` and the window's
    `timed_completions_up_to` / `timed_completions`); completions only, as `response_time_ms`.
    The mean is exact: the sum of the durations over the completions with one. A percentile is
    `percentile_disc`'s rank, ceil(fraction * n) in double precision (at least 1), found
    exactly in its bin (the bins sort as the durations do); the value is that bin's smallest
    duration when the rank is the bin's first, its largest otherwise, so it is exact whenever
    the bin holds one distinct duration (every whole millisecond below 100 ms) and otherwise
    off by less than the bin's width: under 1 ms below 100 ms, under 1% of the exact value
    above (bins in loader/ingest/migrations/0015_marketplace_live_rollup.sql).
-#}
{% macro binned_response_time_ms(percentile=none) -%}
    {%- if percentile is none -%}
        sum(duration_sum_ms) filter (where is_success)
        / nullif(sum(invocations) filter (where is_success and duration_bin >= 0), 0)
    {%- else -%}
        {%- set rank -%}
            greatest(
                ceil(
                    cast({{ percentile }} as double precision)
                    * cast(timed_completions as double precision)
                ),
                1
            )
        {%- endset -%}
        min(
            case
                when timed_completions_up_to - invocations + 1 = {{ rank }} then duration_min_ms
                else duration_max_ms
            end
        ) filter (
            where
                is_success
                and duration_bin >= 0
                and timed_completions_up_to >= {{ rank }}
                and timed_completions_up_to - invocations < {{ rank }}
        )
    {%- endif -%}
{%- endmacro %}


{#-
    Revenue per tenant that invoked: the window's revenue over its distinct invoking tenants
    (the mean of `tenant_revenue.revenue_usd` over the publisher's rows); null without tenants.
-#}
{% macro avg_revenue_per_tenant(revenue_usd, tenants) -%}
    {{ revenue_usd }} / nullif({{ tenants }}, 0)
{%- endmacro %}


{#- Failed tool calls over the calls read from the tool events; null without calls. -#}
{% macro tool_failure_rate(failures, calls) -%}
    cast({{ failures }} as numeric) / nullif({{ calls }}, 0)
{%- endmacro %}


{#-
    Revenue per invocation, errored invocations included (they earn nothing, so errors lower
    it): revenue over invocations; null without invocations.
-#}
{% macro revenue_per_invocation(revenue_usd, invocations) -%}
    {{ revenue_usd }} / nullif({{ invocations }}, 0)
{%- endmacro %}


{#-
    A duration percentile over LLM call rows (`duration_ms`): every call, failed ones
    included (a failed call also costs time), nearest-rank (discrete) as the response times.
-#}
{% macro llm_call_duration_ms(percentile) -%}
    percentile_disc({{ percentile }}) within group (order by duration_ms)
{%- endmacro %}


{#- Revenue minus LLM cost over revenue; null without revenue. -#}
{% macro margin_rate(revenue_usd, cost_usd) -%}
    ({{ revenue_usd }} - {{ cost_usd }}) / nullif({{ revenue_usd }}, 0)
{%- endmacro %}


{#- A cost over a count (invocations, conversations); null when the count is zero. -#}
{% macro cost_per(cost_usd, count) -%}
    {{ cost_usd }} / nullif({{ count }}, 0)
{%- endmacro %}
