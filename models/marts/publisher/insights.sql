{{
    config(
        indexes=[
            {'columns': ['insight_id'], 'unique': true},
            {'columns': ['publisher_id']},
        ],
    )
}}

with

rules as (

    select * from {{ ref('insight_rules') }}
    where is_enabled

),

publisher_dashboard as (

    select * from {{ ref('publisher_dashboard') }}

),

publisher_tool_usage as (

    select * from {{ ref('publisher_tool_usage') }}

),

metrics as (

    -- one row per publisher (or publisher and tool) and metric of insight_metrics(), with the
    -- sample behind it; a tool's metrics only when it has tool events
    {%- for metric in insight_metrics() %}
        {% if not loop.first %}
            union all
        {% endif %}
        select
            publisher_id,
            cast(null as {{ text_type() }}) as agent_id,
            {% if metric.mart == 'publisher_tool_usage' -%}
                tool_name,
            {%- else -%}
                cast(null as {{ text_type() }}) as tool_name,
            {%- endif %}
            '{{ metric.metric_name }}' as metric_name,
            {{ metric.value }} as metric_value,
            {{ metric.sample }} as sample_size
        from {{ metric.mart }}
        {%- if metric.mart == 'publisher_tool_usage' %}
            where has_tool_events
        {%- endif %}
    {%- endfor %}

),

findings as (

    select
        metrics.publisher_id,
        metrics.agent_id,
        metrics.tool_name,
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
        rules.recommendation_template

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

),

formatted as (

    select
        *,
        {{ insight_value_text('metric_value', 'value_format') }} as metric_value_text,
        {{ insight_threshold_text('threshold', 'value_format') }} as threshold_text

    from findings

),

final as (

    select
        md5(
            rule_id
            || '|' || publisher_id
            || '|' || coalesce(agent_id, '')
            || '|' || coalesce(tool_name, '')
        ) as insight_id,
        rule_id,
        publisher_id,
        agent_id,
        tool_name,
        severity,
        category,
        replace(title_template, '{tool_name}', coalesce(tool_name, '')) as title,
        replace(
            replace(
                replace(description_template, '{metric_value}', metric_value_text),
                '{threshold}', threshold_text
            ),
            '{tool_name}', coalesce(tool_name, '')
        ) as description,
        replace(recommendation_template, '{tool_name}', coalesce(tool_name, ''))
            as recommendation,
        metric_name,
        comparison,
        metric_value,
        threshold,
        sample_size,
        min_sample,
        {{ marketplace_window_start_date() }} as window_start_date,
        {{ marketplace_as_of_date() }} as window_end_date

    from formatted

)

select * from final
