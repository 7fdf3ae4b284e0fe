{#-
    What a publisher may see of `insights`: its own findings only (row-level security on
    `publisher_id`), and only those whose metric it may see in `publisher_dashboard_shared` /
    `publisher_tool_usage_shared`: a finding about a metric computed over fewer than
    `min_tenants_per_aggregate` tenants would single those tenants out.
-#}
{{
    config(
        indexes=[
            {'columns': ['publisher_id', 'insight_id'], 'unique': true},
        ],
    )
}}

with

insights as (

    select * from {{ ref('insights') }}

),

dashboard as (

    select * from {{ ref('publisher_dashboard_shared') }}

),

tool_usage as (

    select * from {{ ref('publisher_tool_usage_shared') }}

),

rules as (

    select * from {{ ref('insight_rules') }}

),

visible as (

    select
        insights.*,
        case insights.metric_name
            when 'error_rate' then dashboard.error_rate
            when 'p95_response_time_ms' then dashboard.p95_response_time_ms
            when 'avg_satisfaction' then dashboard.avg_satisfaction
            when 'tool_failure_rate' then tool_usage.failure_rate
        end as published_value,
        case insights.metric_name
            when 'error_rate' then dashboard.total_invocations
            when 'p95_response_time_ms' then dashboard.completed_invocations
            when 'avg_satisfaction' then dashboard.rating_count
            when 'tool_failure_rate' then tool_usage.calls
        end as published_sample_size

    from insights
    left join dashboard
        on insights.publisher_id = dashboard.publisher_id
    left join tool_usage
        on
            insights.publisher_id = tool_usage.publisher_id
            and insights.tool_name = tool_usage.tool_name

),

formatted as (

    -- the description again, with the published value (as insights formats it)
    select
        visible.*,
        replace(
            replace(
                replace(
                    rules.description_template,
                    '{metric_value}',
                    case rules.value_format
                        when 'percent'
                            then {{
                                number_text('visible.published_value * 100', 'FM999999990.0')
                            }} || '%'
                        when 'milliseconds'
                            then {{
                                number_text('round(visible.published_value)', 'FM999999999990')
                            }}
                        when 'rating'
                            then {{ number_text('round(visible.published_value, 2)', 'FM990.09') }}
                    end
                ),
                '{threshold}',
                case rules.value_format
                    when 'percent' then {{ trimmed_number_text('visible.threshold * 100') }} || '%'
                    else {{ trimmed_number_text('visible.threshold') }}
                end
            ),
            '{tool_name}', coalesce(visible.tool_name, '')
        ) as published_description

    from visible
    inner join rules
        on visible.rule_id = rules.rule_id
    where visible.published_value is not null

),

final as (

    select
        insight_id,
        rule_id,
        publisher_id,
        agent_id,
        tool_name,
        severity,
        category,
        title,
        published_description as description,
        recommendation,
        metric_name,
        comparison,
        published_value as metric_value,
        threshold,
        published_sample_size as sample_size,
        min_sample,
        window_start_date,
        window_end_date

    from formatted

)

select * from final
