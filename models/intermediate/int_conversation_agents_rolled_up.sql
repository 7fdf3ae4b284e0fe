{#-
    One row per conversation and agent: the agent's first and last event in the conversation
    and the time between them, the reference's per-agent resolution time before averaging.

    Incremental like fct_conversations: every conversation with an event loaded
    since the high-water mark minus `lookback_hours` is recomputed from all of its events and
    replaced whole (delete+insert keyed on conversation_id, which deletes all of its agents).
-#}
{{
    incremental_model(
        unique_key='conversation_id',
        retention=retention_by_rows(
            time_column='first_event_at',
            key='conversation_id',
            kept_in="ref('stg_agent_events__events')",
        ),
        indexes=[
            {'columns': ['conversation_id', 'agent_name'], 'unique': true},
            {'columns': ['agent_name']},
            {'columns': ['last_loaded_at']},
        ],
    )
}}

with

events as (

    select * from {{ ref('stg_agent_events__events') }}

),

conversation_events as (

    select * from events

    {% if is_incremental() %}
        {{ where_conversation_touched('first_event_at') }}
    {% endif %}

),

conversation_agents as (

    select
        conversation_id,
        agent_name,
        count(*) as events,
        -- The reference's resolution time: see the `resolution_seconds` doc block.
        {{ seconds_between('min(occurred_at)', 'max(occurred_at)') }} as resolution_seconds,
        min(occurred_at) as first_event_at,
        max(occurred_at) as last_event_at,
        max(loaded_at) as last_loaded_at

    from conversation_events
    group by conversation_id, agent_name

),

final as (

    select
        conversation_id,
        agent_name,
        events,
        resolution_seconds,
        first_event_at,
        last_event_at,
        last_loaded_at

    from conversation_agents

)

select * from final
