{#-
    One row per conversation and agent: the agent's first and last event in the conversation
    and the time between them, the reference's per-agent resolution time before averaging.

    Incremental like fct_conversations: every conversation with an event loaded
    since the high-water mark minus `lookback_hours` is recomputed from all of its events and
    replaced whole (delete+insert keyed on conversation_id, which deletes all of its agents).
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='conversation_id',
        on_schema_change='fail',
        pre_hook="{{ delete_purged_rows('first_event_at', 'conversation_id', ref('stg_agent_events__events'), 'conversation_id', 'last_loaded_at') }}",
        indexes=[
            {'columns': ['conversation_id', 'agent_name'], 'unique': true},
            {'columns': ['agent_name']},
            {'columns': ['last_loaded_at']},
        ],
    )
}}

-- the retention pre-hook reads raw.purges (macros/retention.sql): an edge in the lineage
-- depends_on: {{ ref('stg_loader__purges') }}

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
