{#-
    The metrics the insight rules (seeds/insight_rules.csv) may test, listed once: `insights`
    unpivots them from the operator marts, `insights_shared` reads the same columns of the
    `*_shared` marts (which keep the base marts' column names), and the seed's `metric_name`
    must be one of them (seeds/_seeds.yml). A metric is read from `mart` (per publisher from
    `publisher_dashboard`, per publisher and tool from `publisher_tool_usage`), its value
    from the column `value` and the sample its rules' `min_sample` counts from `sample`;
    `columns` names the subject columns it has beyond the publisher, `where` the rows it is
    read from (see insight_metric_rows). A rule on a new metric needs an entry here and a CSV
    row.
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
            'value': 'failure_rate', 'sample': 'calls',
            'columns': {'tool_name': 'tool_name'}, 'where': 'has_tool_events'},
    ]) }}
{%- endmacro %}


{#-
    The per-tenant metrics of the LLM cost rules, which `tenant_llm_metrics` computes (for
    `tenant_llm_insights` and the alert rules) and `insights` never reads, in the same form
    as insight_metrics() (`mart`: the CTE of tenant_llm_metrics it is read from; a metric of
    the month by default, `columns` naming the day of a daily one): the as_of month's budget
    used, margin and unpriced calls (sample: the month's LLM calls), and a day's cost over the
    tenant's trailing median (sample: the trailing days with a call).
-#}
{% macro tenant_insight_metrics() -%}
    {{ return([
        {'metric_name': 'llm_budget_used_rate', 'mart': 'this_month',
            'value': 'llm_budget_used_rate', 'sample': 'llm_calls'},
        {'metric_name': 'margin_usd', 'mart': 'this_month',
            'value': 'margin_usd', 'sample': 'llm_calls'},
        {'metric_name': 'unpriced_llm_calls', 'mart': 'this_month',
            'value': 'unpriced_llm_calls', 'sample': 'llm_calls'},
        {'metric_name': 'llm_cost_spike_ratio', 'mart': 'daily_spikes',
            'value': 'spike_ratio', 'sample': 'trailing_days',
            'columns': {'period': "'day'", 'period_start_date': 'date_day'}},
    ]) }}
{%- endmacro %}


{#-
    The names of every metric a rule may test (insight_metrics(), then
    tenant_insight_metrics()) as a SQL list: `'error_rate', 'p95_response_time_ms', ...`.
-#}
{% macro insight_metric_names() -%}
    {%- for metric in insight_metrics() + tenant_insight_metrics() -%}
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


{#-
    The metric unpivot of an insights model: one `select` per metric of `metrics`
    (insight_metrics() or tenant_insight_metrics()), joined by `union all`, each giving the
    subject `columns` (a dict: column name to its SQL when the metric does not name it in its
    own `columns`), `metric_name`, `metric_value` (cast to `value_type` when given) and
    `sample_size`, from the metric's `mart` (a CTE of the model), its `where` rows only.
-#}
{% macro insight_metric_rows(metrics, columns, value_type=none) -%}
    {%- set selects = [] -%}
    {%- for metric in metrics -%}
        {%- set fields = [] -%}
        {%- for column, otherwise in columns.items() -%}
            {%- set named = metric.get('columns', {}).get(column, otherwise) -%}
            {%- do fields.append(named if named == column else named ~ ' as ' ~ column) -%}
        {%- endfor -%}
        {%- set value = metric.value if value_type is none
            else 'cast(' ~ metric.value ~ ' as ' ~ value_type ~ ')' -%}
        {%- do fields.append("'" ~ metric.metric_name ~ "' as metric_name") -%}
        {%- do fields.append(value ~ ' as metric_value') -%}
        {%- do fields.append(metric.sample ~ ' as sample_size') -%}
        {%- set where = ('\n    where ' ~ metric.where) if metric.get('where') else '' -%}
        {%- do selects.append(
            'select\n        ' ~ fields | join(',\n        ')
            ~ '\n    from ' ~ metric.mart ~ where
        ) -%}
    {%- endfor -%}
    {{ selects | join('\n\n    union all\n\n    ') }}
{%- endmacro %}


{#-
    The rule firings of an insights model, one per metric row and enabled rule: the rows of
    the CTE `metrics` (insight_metric_rows: the subject `columns`, metric_value, sample_size)
    joined to the CTE `rules` (the enabled rows of seeds/insight_rules.csv) on the metric,
    kept when the value is known, the sample reaches the rule's `min_sample` and the value
    passes the rule's comparison; with the rule's fields and the value and threshold as its
    texts write them (`metric_value_text`, `threshold_text`). The one firing rule of
    `insights` and `tenant_llm_insights`.
-#}
{% macro insight_findings(columns) -%}
    {%- set subject = [] -%}
    {%- for column in columns -%}
        {%- do subject.append('metrics.' ~ column) -%}
    {%- endfor -%}
    select
        {{ subject | join(',\n        ') }},
        metrics.metric_value,
        metrics.sample_size,
        rules.rule_id,
        rules.metric_name,
        rules.comparison,
        rules.threshold,
        rules.min_sample,
        rules.value_format,
        rules.severity,
        rules.category,
        rules.title_template,
        rules.description_template,
        rules.recommendation_template,
        {{ insight_value_text('metrics.metric_value', 'rules.value_format') }}
            as metric_value_text,
        {{ insight_threshold_text('rules.threshold', 'rules.value_format') }} as threshold_text

    from metrics
    inner join rules
        on metrics.metric_name = rules.metric_name
    where
        metrics.metric_value is not null
        and metrics.sample_size >= rules.min_sample
        and case rules.comparison
            when '>' then metrics.metric_value > rules.threshold
            when '>=' then metrics.metric_value >= rules.threshold
            when '<' then metrics.metric_value < rules.threshold
            when '<=' then metrics.metric_value <= rules.threshold
        end
{%- endmacro %}
