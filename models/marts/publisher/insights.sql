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
    {%- set no_text = 'cast(null as ' ~ text_type() ~ ')' %}
    {{
        insight_metric_rows(
            insight_metrics(),
            {'publisher_id': 'publisher_id', 'agent_id': no_text, 'tool_name': no_text},
        )
    }}

),

findings as (

    {{ insight_findings(['publisher_id', 'agent_id', 'tool_name']) }}

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

    from findings

)

select * from final
