{{
    incremental_model(
        retention=retention_by_rows(
            time_column='used_at',
            key=['event_id', 'publisher_id'],
            kept_in="ref('stg_marketplace__events')",
        ),
        indexes=[
            {'columns': ['tool_use_id', 'publisher_id'], 'unique': true},
            {'columns': ['publisher_id', 'used_date']},
            {'columns': ['loaded_at']},
        ],
    )
}}

with

events as (

    select * from {{ ref('stg_marketplace__events') }} as events

    {% if is_incremental() %}
        {{
            where_not_built_yet(
                'events', ['event_id', 'publisher_id'], ['event_id', 'publisher_id']
            )
        }}
    {% endif %}

),

invocations as (

    select * from {{ ref('int_invocations_enriched') }} as invocations

    {% if is_incremental() %}
        {{
            where_not_built_yet(
                'invocations', ['invocation_id', 'publisher_id'], ['event_id', 'publisher_id']
            )
        }}
    {% endif %}

),

tool_events as (

    -- a tool event: `tool_called` (a call) or `tool_failed` (a failure); whether a failure
    -- is also a `tool_called` call is the `tool_failure_reading` var (publisher_tool_usage)
    select
        event_id as tool_use_id,
        event_id,
        agent_id,
        publisher_id,
        tenant_id,
        tool_name,
        'tool_event' as reported_by,
        duration_ms,
        event_type = 'tool_failed' as is_failure,
        occurred_at as used_at,
        loaded_at

    from events
    where event_type in ('tool_called', 'tool_failed')

),

listed_calls as (

    -- one row per entry of an invocation's `tool_calls` list
    -- (the marketplace reference's tool usage count)
    select
        invocations.invocation_id || ':' || listed.call_position as tool_use_id,
        invocations.invocation_id as event_id,
        invocations.agent_id,
        invocations.publisher_id,
        invocations.tenant_id,
        listed.tool_name,
        case
            when invocations.is_success then 'completed_invocation'
            else 'errored_invocation'
        end as reported_by,
        cast(null as numeric) as duration_ms,
        cast(null as boolean) as is_failure,
        invocations.finished_at as used_at,
        invocations.loaded_at

    from invocations
    {{
        cross_join_json_array_elements(
            'invocations.tool_calls', 'listed', 'tool_name', 'call_position'
        )
    }}

),

unioned as (

    select * from tool_events
    union all
    select * from listed_calls

),

final as (

    select
        tool_use_id,
        event_id,
        agent_id,
        publisher_id,
        tenant_id,
        tool_name,
        reported_by,
        duration_ms,
        is_failure,
        {{ utc_date('used_at') }} as used_date,
        used_at,
        loaded_at

    from unioned

)

select * from final
