{#-
    What a publisher may see of `insights`: its own findings only (row-level security on
    `publisher_id`), and only those whose metric it may see in `publisher_dashboard_shared` /
    `publisher_tool_usage_shared`: a finding about a metric computed over fewer than
    `min_tenants_per_aggregate` tenants would single those tenants out.
-#}
{{
    config(
        indexes=[
            {'columns': ['insight_id'], 'unique': true},
            {'columns': ['publisher_id']},
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

visible as (

    select insights.*
    from insights
    left join dashboard
        on insights.publisher_id = dashboard.publisher_id
    left join tool_usage
        on
            insights.publisher_id = tool_usage.publisher_id
            and insights.tool_name = tool_usage.tool_name
    where
        case insights.metric_name
            when 'error_rate' then dashboard.error_rate is not null
            when 'p95_response_time_ms' then dashboard.p95_response_time_ms is not null
            when 'avg_satisfaction' then dashboard.avg_satisfaction is not null
            when 'tool_failure_rate' then tool_usage.failure_rate is not null
            else false
        end

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
        description,
        recommendation,
        metric_name,
        comparison,
        metric_value,
        threshold,
        sample_size,
        min_sample,
        window_start_date,
        window_end_date

    from visible

)

select * from final
