{#-
    One row per conversation event, typed and renamed, with the payload and metadata fields
    analysts use pulled into columns (each only for the event type that carries it).

    Incremental: a run reads only the raw rows loaded since this table's high-water mark
    (`loaded_at`) minus `lookback_hours`, and of those only the events not already here. Raw
    rows are never updated, so an event, once staged, never changes.
-#}
{{
    incremental_model(
        retention=retention_by_rows(
            time_column='occurred_at',
            key=['event_id', 'agent_name'],
            kept_in="source('agent_events', 'agent_events')",
        ),
        indexes=[
            {'columns': ['event_id', 'agent_name'], 'unique': true},
            {'columns': ['conversation_id']},
            {'columns': ['loaded_at']},
        ],
    )
}}

with

source as (

    select * from {{ source('agent_events', 'agent_events') }} as agent_events

    {% if is_incremental() %}
        {{
            where_not_built_yet(
                'agent_events', ['event_id', 'agent_name'], ['event_id', 'agent_name']
            )
        }}
    {% endif %}

),

renamed as (

    select
        event_id,
        conversation_id,
        session_id,
        user_id,
        batch_id,
        agent_name,
        event_type,
        event_ts as occurred_at,
        loaded_at,
        case
            when event_type = 'message' then {{ json_text('payload', 'text') }}
        end as message_text,
        case
            when event_type = 'message' then {{ json_text('payload', 'role') }}
        end as message_role,
        case
            when event_type = 'tool_call' then {{ json_text('payload', 'tool_name') }}
        end as tool_name,
        case
            when event_type = 'handoff' then {{ json_text('payload', 'from_agent') }}
        end as handoff_from_agent_name,
        case
            when event_type = 'handoff' then {{ json_text('payload', 'to_agent') }}
        end as handoff_to_agent_name,
        case
            when event_type = 'handoff' then {{ json_text('payload', 'reason') }}
        end as handoff_reason,
        -- an error without a usable type (missing, null or "") has a null type everywhere
        case
            when event_type = 'error' then nullif({{ json_text('payload', 'error_type') }}, '')
        end as error_type,
        case
            when event_type = 'error' then {{ json_text('payload', 'message') }}
        end as error_message,
        {{ json_text('metadata', 'model') }} as model_name,
        case
            when event_type = 'tool_call' then {{ json_value('payload', 'arguments') }}
        end as tool_arguments,
        -- The loader has checked these JSON types and bounds; json_number checks again, so
        -- a value out of bounds becomes null instead of a cast that stops the build.
        {{ json_number('metadata', 'total_tokens', 'bigint', 0, 1e12) }} as total_tokens,
        {{ json_number('metadata', 'prompt_tokens', 'bigint', 0, 1e12) }} as prompt_tokens,
        {{ json_number('metadata', 'completion_tokens', 'bigint', 0, 1e12) }}
            as completion_tokens,
        {{ json_number('metadata', 'latency_ms', 'numeric', 0, 1e12) }} as latency_ms

    from source

),

final as (

    select
        -- ids
        event_id,
        conversation_id,
        session_id,
        user_id,
        batch_id,

        -- strings
        agent_name,
        event_type,
        message_text,
        message_role,
        tool_name,
        handoff_from_agent_name,
        handoff_to_agent_name,
        handoff_reason,
        error_type,
        error_message,
        model_name,

        -- json
        tool_arguments,

        -- numerics
        total_tokens,
        prompt_tokens,
        completion_tokens,
        latency_ms,

        -- timestamps
        occurred_at,
        loaded_at

    from renamed

)

select * from final
