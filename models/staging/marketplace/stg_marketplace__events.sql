{{
    config(
        materialized='incremental',
        unique_key='event_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[
            {'columns': ['event_id'], 'unique': true},
            {'columns': ['loaded_at'], 'type': 'brin'},
        ],
    )
}}

with

source as (

    select * from {{ source('marketplace', 'marketplace_events') }}
    where {{ loaded_since_high_water_mark() }}

),

renamed as (

    select
        -- ids
        id as event_id,
        event_type,
        agent_id,
        publisher_id,
        tenant_id,
        batch_id,

        -- strings (each cast only for the event types whose contract defines the key:
        -- other types may carry the same key with another type)
        case
            when event_type in ('tool_called', 'tool_failed')
                then properties ->> 'tool_name'
        end as tool_name,
        case
            when event_type in ('agent_completed', 'agent_errored')
                then properties ->> 'error_type'
        end as error_type,
        case
            when event_type in ('tool_called', 'tool_failed')
                then properties ->> 'error'
        end as tool_error_message,
        case
            when event_type = 'user_feedback'
                then properties ->> 'comment'
        end as feedback_comment,
        case
            when event_type in ('install', 'uninstall')
                then properties ->> 'plan'
        end as plan_name,

        -- numerics
        case
            when event_type in ('agent_invoked', 'agent_completed', 'agent_errored')
                then cast(properties ->> 'input_tokens' as bigint)
        end as input_tokens,
        case
            when event_type in ('agent_completed', 'agent_errored')
                then cast(properties ->> 'output_tokens' as bigint)
        end as output_tokens,
        case
            when event_type in ('agent_completed', 'agent_errored', 'tool_called', 'tool_failed')
                then cast(properties ->> 'duration_ms' as numeric)
        end as duration_ms,
        case
            when event_type in ('agent_completed', 'agent_errored')
                then cast(properties ->> 'cost_usd' as numeric)
        end as cost_usd,
        case
            when event_type = 'user_feedback'
                then cast(properties ->> 'rating' as integer)
        end as rating,

        -- arrays: the tools an invocation called, in order (seed default: empty list)
        case
            when event_type in ('agent_completed', 'agent_errored')
                then array(
                    select jsonb_array_elements_text(
                        coalesce(properties -> 'tool_calls', '[]'::jsonb)
                    )
                )
        end as tool_calls,

        -- the raw body, for keys outside the contract
        properties,

        -- timestamps
        event_ts as event_at,
        loaded_at

    from source

)

select * from renamed
