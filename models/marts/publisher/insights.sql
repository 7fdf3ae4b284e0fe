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

    -- one row per publisher (or publisher and tool) and metric, with the sample behind it
    select
        publisher_id,
        cast(null as {{ text_type() }}) as agent_id,
        cast(null as {{ text_type() }}) as tool_name,
        'error_rate' as metric_name,
        error_rate as metric_value,
        total_invocations as sample_size
    from publisher_dashboard

    union all

    select
        publisher_id,
        cast(null as {{ text_type() }}) as agent_id,
        cast(null as {{ text_type() }}) as tool_name,
        'p95_response_time_ms' as metric_name,
        p95_response_time_ms as metric_value,
        completed_invocations as sample_size
    from publisher_dashboard

    union all

    select
        publisher_id,
        cast(null as {{ text_type() }}) as agent_id,
        cast(null as {{ text_type() }}) as tool_name,
        'avg_satisfaction' as metric_name,
        avg_satisfaction as metric_value,
        rating_count as sample_size
    from publisher_dashboard

    union all

    select
        publisher_id,
        cast(null as {{ text_type() }}) as agent_id,
        tool_name,
        'tool_failure_rate' as metric_name,
        failure_rate as metric_value,
        calls as sample_size
    from publisher_tool_usage
    where has_tool_events

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
        case value_format
            when 'percent' then {{ number_text('metric_value * 100', 'FM999999990.0') }} || '%'
            when 'milliseconds' then {{ number_text('round(metric_value)', 'FM999999999990') }}
            when 'rating' then {{ number_text('round(metric_value, 2)', 'FM990.09') }}
        end as metric_value_text,
        case value_format
            when 'percent' then {{ trimmed_number_text('threshold * 100') }} || '%'
            else {{ trimmed_number_text('threshold') }}
        end as threshold_text

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
