{#-
    One row per conversation: who, which agents, when, how long, what happened and how it
    ended. Incremental: the conversations int_conversations_rolled_up rebuilt since this
    table's high-water mark (minus `lookback_hours`) replace their rows here.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='conversation_id',
        on_schema_change='fail',
        pre_hook="{{ delete_purged_rows('started_at', 'conversation_id', ref('int_conversations_rolled_up'), 'conversation_id', 'last_loaded_at') }}",
        indexes=[
            {'columns': ['conversation_id'], 'unique': true},
            {'columns': ['started_at']},
            {'columns': ['first_agent_name']},
            {'columns': ['outcome']},
            {'columns': ['last_loaded_at']},
        ],
    )
}}

-- the retention pre-hook reads raw.purges (macros/retention.sql): an edge in the lineage
-- depends_on: {{ ref('stg_loader__purges') }}

with

conversations as (

    select * from {{ ref('int_conversations_rolled_up') }}

    {% if is_incremental() %}
        where
            last_loaded_at >= {{ lookback_high_water_mark('last_loaded_at') }}
        -- conversations that lost events to a purge, as recomputed upstream
        {{ or_lost_to_purge('conversation_id', 'started_at', 'last_loaded_at') }}
    {% endif %}

),

final as (

    select
        -- ids
        conversation_id,
        user_id,
        session_id,

        -- strings
        first_agent_name,
        last_agent_name,
        agent_names,
        outcome,

        -- numerics
        agents_involved,
        events,
        messages,
        tool_calls,
        handoffs,
        errors,
        completions,
        total_tokens,
        total_latency_ms,
        avg_latency_ms,
        duration_seconds,

        -- booleans
        has_conversation_end,

        -- timestamps
        started_at,
        ended_at,
        last_loaded_at

    from conversations

)

select * from final
