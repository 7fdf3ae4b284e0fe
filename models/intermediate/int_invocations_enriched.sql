{{
    incremental_model(
        retention=retention_by_rows(
            time_column='finished_at',
            key=['invocation_id', 'publisher_id'],
            kept_in="ref('stg_marketplace__events')",
            kept_key=['event_id', 'publisher_id'],
        ),
        indexes=[
            {'columns': ['invocation_id', 'publisher_id'], 'unique': true},
            {'columns': ['publisher_id', 'finished_date']},
            {'columns': ['loaded_at']},
            {'columns': ['finished_at'], 'type': 'brin'},
        ],
    )
}}

with

events as (

    select * from {{ ref('stg_marketplace__events') }} as events

    {% if is_incremental() %}
        {{
            where_not_built_yet(
                'events', ['event_id', 'publisher_id'], ['invocation_id', 'publisher_id']
            )
        }}
    {% endif %}

),

invocations as (

    -- as in the marketplace reference, an invocation is one `agent_completed` (success)
    -- or `agent_errored` event
    select
        event_id as invocation_id,
        agent_id,
        publisher_id,
        tenant_id,
        error_type,
        input_tokens,
        output_tokens,
        duration_ms,
        cost_usd,
        tool_calls,
        occurred_at as finished_at,
        loaded_at,
        input_tokens + output_tokens as total_tokens,
        {{ json_array_length('tool_calls') }} as tool_call_count,
        event_type = 'agent_completed' as is_success

    from events
    where event_type in ('agent_completed', 'agent_errored')

),

final as (

    select
        invocation_id,
        agent_id,
        publisher_id,
        tenant_id,
        error_type,
        input_tokens,
        output_tokens,
        total_tokens,
        duration_ms,
        cost_usd,
        -- as in the marketplace reference, revenue is the `cost_usd` of completions
        -- (`properties.get("cost_usd", 0)`:
        -- a completion without a cost earns 0); an errored call earns nothing
        case when is_success then coalesce(cost_usd, 0) else 0 end as revenue_usd,
        tool_call_count,
        tool_calls,
        is_success,
        {{ utc_date('finished_at') }} as finished_date,
        finished_at,
        loaded_at

    from invocations

)

select * from final
