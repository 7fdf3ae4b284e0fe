{{
    incremental_model(
        retention=retention_by_rows(
            time_column='occurred_at',
            key=['event_id', 'publisher_id'],
            kept_in="source('marketplace', 'marketplace_events')",
            kept_key=['id', 'publisher_id'],
        ),
        indexes=[
            {'columns': ['event_id', 'publisher_id'], 'unique': true},
            {'columns': ['loaded_at'], 'type': 'brin'},
        ],
    )
}}

with

source as (

    select * from {{ source('marketplace', 'marketplace_events') }} as marketplace_events

    {% if is_incremental() %}
        {{
            where_not_built_yet(
                'marketplace_events', ['id', 'publisher_id'], ['event_id', 'publisher_id']
            )
        }}
    {% endif %}

),

renamed as (

    select
        id as event_id,
        event_type,
        agent_id,
        publisher_id,
        tenant_id,
        batch_id,
        properties,
        event_ts as occurred_at,
        loaded_at,

        -- each key is read only for the event types whose contract defines it: other types
        -- may carry the same key with another type; the loader has checked these types and
        -- bounds, and json_number checks again (null rather than a failed cast)
        case
            when event_type in ('tool_called', 'tool_failed')
                then {{ json_text('properties', 'tool_name') }}
        end as tool_name,
        -- no usable error type (missing, null or "") is null, as for conversation errors
        case
            when event_type in ('agent_completed', 'agent_errored')
                then nullif({{ json_text('properties', 'error_type') }}, '')
        end as error_type,
        case
            when event_type in ('tool_called', 'tool_failed')
                then {{ json_text('properties', 'error') }}
        end as tool_error_message,
        case
            when event_type = 'user_feedback'
                then {{ json_text('properties', 'comment') }}
        end as feedback_comment,
        case
            when event_type in ('install', 'uninstall')
                then {{ json_text('properties', 'plan') }}
        end as plan_name,
        case
            when event_type in ('agent_invoked', 'agent_completed', 'agent_errored')
                then {{ json_number('properties', 'input_tokens', 'bigint', 0, 1e12) }}
        end as input_tokens,
        case
            when event_type in ('agent_completed', 'agent_errored')
                then {{ json_number('properties', 'output_tokens', 'bigint', 0, 1e12) }}
        end as output_tokens,
        case
            when event_type in ('agent_completed', 'agent_errored', 'tool_called', 'tool_failed')
                then {{ json_number('properties', 'duration_ms', 'numeric', 0, 1e12) }}
        end as duration_ms,
        case
            when event_type in ('agent_completed', 'agent_errored')
                then {{ json_number('properties', 'cost_usd', 'numeric', 0, 1e9) }}
        end as cost_usd,
        case
            when event_type = 'user_feedback'
                then {{ json_number('properties', 'rating', 'integer', 1, 5) }}
        end as rating,
        -- the tools an invocation called, in order (the reference's default: an empty list)
        case
            when event_type in ('agent_completed', 'agent_errored')
                then
                    coalesce(
                        {{ json_value('properties', 'tool_calls') }}, {{ empty_json_array() }}
                    )
        end as tool_calls

    from source

),

final as (

    select
        -- ids
        event_id,
        agent_id,
        publisher_id,
        tenant_id,
        batch_id,

        -- strings
        event_type,
        tool_name,
        error_type,
        tool_error_message,
        feedback_comment,
        plan_name,

        -- numerics
        input_tokens,
        output_tokens,
        duration_ms,
        cost_usd,
        rating,

        -- arrays and json: the listed tools, and the raw body for keys outside the contract
        tool_calls,
        properties,

        -- timestamps
        occurred_at,
        loaded_at

    from renamed

)

select * from final
