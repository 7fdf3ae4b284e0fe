{#-
    The metrics the insight rules (seeds/insight_rules.csv) may test, listed once: `insights`
    unpivots them from the operator marts, `insights_shared` reads the same columns of the
    `*_shared` marts (which keep the base marts' column names), and the seed's `metric_name`
    must be one of them (seeds/_seeds.yml). A metric is read from `mart` (per publisher from
    `publisher_dashboard`, per publisher and tool from `publisher_tool_usage`), its value
    from the column `value` and the sample its rules' `min_sample` counts from `sample`.
    A rule on a new metric needs an entry here and a CSV row.
-#}
{% macro insight_metrics() -%}
    {{ return([
        {'metric_name': 'error_rate', 'mart': 'publisher_dashboard',
            'value': 'error_rate', 'sample': 'total_invocations'},
        {'metric_name': 'p95_response_time_ms', 'mart': 'publisher_dashboard',
            'value': 'p95_response_time_ms', 'sample': 'completed_invocations'},
        {'metric_name': 'avg_satisfaction', 'mart': 'publisher_dashboard',
            'value': 'avg_satisfaction', 'sample': 'rating_count'},
        {'metric_name': 'tool_failure_rate', 'mart': 'publisher_tool_usage',
            'value': 'failure_rate', 'sample': 'calls'},
    ]) }}
{%- endmacro %}


{#-
    The per-tenant metrics of the LLM cost rules, which `tenant_llm_metrics` computes (for
    `tenant_llm_insights` and the alert rules) and `insights` never reads: the as_of month's budget used, margin and
    unpriced calls (sample: the month's LLM calls), and a day's cost over the tenant's trailing
    median (sample: the trailing days with a call).
-#}
{% macro tenant_insight_metrics() -%}
    {{ return([
        'llm_budget_used_rate', 'margin_usd', 'unpriced_llm_calls', 'llm_cost_spike_ratio',
    ]) }}
{%- endmacro %}


{#- The tenant metric names as a SQL list. -#}
{% macro tenant_insight_metric_names() -%}
    '{{ tenant_insight_metrics() | join("', '") }}'
{%- endmacro %}


{#- The metric names as a SQL list: `'error_rate', 'p95_response_time_ms', ...`. -#}
{% macro insight_metric_names() -%}
    {%- for metric in insight_metrics() -%}
        '{{ metric.metric_name }}'{{ ', ' if not loop.last }}
    {%- endfor -%}
{%- endmacro %}


{#-
    `case metric_name when 'error_rate' then publisher_dashboard.error_rate ... end`: the
    column `field` (`value` or `sample`) of each metric, read from the CTEs named after the
    metric's mart.
-#}
{% macro insight_metric_case(metric_name, field) -%}
    case {{ metric_name }}
    {%- for metric in insight_metrics() %}
        when '{{ metric.metric_name }}' then {{ metric.mart }}.{{ metric[field] }}
    {%- endfor %}
    end
{%- endmacro %}


{#-
    A metric value as the rule's texts write it (`value_format`: percent, milliseconds, rating;
    usd, ratio, count for the LLM cost rules).
-#}
{% macro insight_value_text(value, value_format) -%}
    case {{ value_format }}
        when 'percent' then {{ number_text(value ~ ' * 100', 'FM999999990.0') }} || '%'
        when 'milliseconds' then {{ number_text('round(' ~ value ~ ')', 'FM999999999990') }}
        when 'rating' then {{ number_text('round(' ~ value ~ ', 2)', 'FM990.09') }}
        when 'usd' then {{ trimmed_number_text('round(' ~ value ~ ', 6)') }}
        when 'ratio' then {{ number_text(value, 'FM999999990.0') }}
        when 'count' then {{ number_text('round(' ~ value ~ ')', 'FM999999999990') }}
    end
{%- endmacro %}


{#- A rule's threshold as its texts write it. -#}
{% macro insight_threshold_text(threshold, value_format) -%}
    case {{ value_format }}
        when 'percent' then {{ trimmed_number_text(threshold ~ ' * 100') }} || '%'
        else {{ trimmed_number_text(threshold) }}
    end
{%- endmacro %}
