{#-
    What a publisher may see of `insights`: its own findings only (row-level security on
    `publisher_id`), and only those whose metric it may see in `publisher_dashboard_shared` /
    `publisher_tool_usage_shared`: a finding about a metric computed over fewer than
    `min_tenants_per_aggregate` tenants would single those tenants out. The metrics, and
    the columns they are read from: insight_metrics() (macros/insight_metrics.sql); which
    column is published how: its mapping in macros/shared_marts.sql.
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

-- the published marts, under the names of the marts insight_metrics() reads
publisher_dashboard as (

    select * from {{ ref('publisher_dashboard_shared') }}

),

publisher_tool_usage as (

    select * from {{ ref('publisher_tool_usage_shared') }}

),

rules as (

    select * from {{ ref('insight_rules') }}

),

visible as (

    select
        insights.*,
        {{ insight_metric_case('insights.metric_name', 'value') }} as published_value,
        {{ insight_metric_case('insights.metric_name', 'sample') }} as published_sample_size

    from insights
    left join publisher_dashboard
        on insights.publisher_id = publisher_dashboard.publisher_id
    left join publisher_tool_usage
        on
            insights.publisher_id = publisher_tool_usage.publisher_id
            and insights.tool_name = publisher_tool_usage.tool_name

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
                    {{ insight_value_text('visible.published_value', 'rules.value_format') }}
                ),
                '{threshold}',
                {{ insight_threshold_text('visible.threshold', 'rules.value_format') }}
            ),
            '{tool_name}', coalesce(visible.tool_name, '')
        ) as published_description

    from visible
    inner join rules
        on visible.rule_id = rules.rule_id
    where visible.published_value is not null

),

final as (

    -- the columns of its mapping (macros/shared_marts.sql)
    select
        {{ shared_mart_columns('insights_shared') }}

    from formatted

)

select * from final
