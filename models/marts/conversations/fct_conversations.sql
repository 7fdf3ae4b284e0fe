{#-
    One row per conversation: who, which agents, when, how long, what happened and how it
    ended. A view on int_conversations_rolled_up, the one materialisation of the
    conversation grain (incremental, indexed for BI): this mart names it for BI and holds its
    contract and grants, without a second copy of every conversation.
-#}
{{
    config(
        materialized='view',
    )
}}

with

conversations as (

    select * from {{ ref('int_conversations_rolled_up') }}

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
