{#-
    One row per conversation: who, which agents, when, how long, what happened and how it
    ended, recomputed from all of its events. The one materialisation of the conversation
    grain: agent_resolution_times reads it, and no intermediate copy exists.

    Incremental: a run rebuilds every conversation that has an event loaded since this
    table's high-water mark (`last_loaded_at`) minus `lookback_hours`, from all of that
    conversation's staged events, and replaces it whole (delete+insert on conversation_id).
    A late event is found by when it was loaded, not by when it happened, so an event that
    belongs to a conversation from last week still gives the full-refresh row.
-#}
{{
    incremental_model(
        unique_key='conversation_id',
        retention=retention_by_rows(
            time_column='started_at',
            key='conversation_id',
            kept_in="ref('stg_agent_events__events')",
        ),
        indexes=[
            {'columns': ['conversation_id'], 'unique': true},
            {'columns': ['last_loaded_at']},
            {'columns': ['started_at']},
            {'columns': ['first_agent_name']},
            {'columns': ['outcome']},
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
        {{ where_conversation_touched('started_at', ref('int_llm_calls_priced')) }}
    {% endif %}

),

llm_calls as (

    -- the LLM calls whose span names a conversation (gen_ai.conversation.id, session.id)
    select * from {{ ref('int_llm_calls_priced') }}

    {% if is_incremental() %}
        {{ where_conversation_touched('started_at', ref('int_llm_calls_priced')) }}
    {% else %}
        where conversation_id is not null
    {% endif %}

),

conversation_agents as (

    select
        conversation_id,
        agent_name,
        min(occurred_at) as first_event_at

    from conversation_events
    group by conversation_id, agent_name

),

agent_lists as (

    select
        conversation_id,
        count(*) as agents_involved,
        {{ ordered_string_agg('agent_name', ', ', ['first_event_at', 'agent_name']) }}
            as agent_names

    from conversation_agents
    group by conversation_id

),

conversation_totals as (

    select
        conversation_id,
        -- Ties on occurred_at are broken by the event's identity (its id, then its agent:
        -- two agents may send the same id), so first and last are deterministic.
        {{ first_by('user_id', ['occurred_at', 'event_id', 'agent_name']) }} as user_id,
        {{ first_by('session_id', ['occurred_at', 'event_id', 'agent_name']) }} as session_id,
        {{ first_by('agent_name', ['occurred_at', 'event_id', 'agent_name']) }} as first_agent_name,
        {{ first_by('agent_name', ['occurred_at desc', 'event_id desc', 'agent_name desc']) }}
            as last_agent_name,
        {{
            first_by(
                'event_type',
                ['occurred_at desc', 'event_id desc', 'agent_name desc'],
                filter="event_type in ('handoff', 'error')"
            )
        }} as last_handoff_or_error_type,
        count(*) as events,
        count(*) filter (where event_type = 'message') as messages,
        count(*) filter (where event_type = 'tool_call') as tool_calls,
        count(*) filter (where event_type = 'handoff') as handoffs,
        count(*) filter (where event_type = 'error') as errors,
        count(*) filter (where event_type = 'completion') as completions,
        coalesce(sum(total_tokens), 0)::bigint as total_tokens,
        -- numeric(38, 6) as in the mart contract: 6 decimals keep timestamps exact.
        coalesce(sum(latency_ms), 0)::numeric(38, 6) as total_latency_ms,
        avg(latency_ms)::numeric(38, 6) as avg_latency_ms,
        bool_or(event_type = 'conversation_end') as has_conversation_end,
        min(occurred_at) as started_at,
        max(occurred_at) as ended_at,
        max(loaded_at) as last_loaded_at

    from conversation_events
    group by conversation_id

),

conversation_llm_calls as (

    select
        conversation_id,
        count(*) as llm_calls,
        count(*) filter (where not is_priced) as unpriced_llm_calls,
        coalesce(sum(input_tokens), 0)::bigint as llm_input_tokens,
        coalesce(sum(output_tokens), 0)::bigint as llm_output_tokens,
        coalesce(sum(total_tokens), 0)::bigint as llm_total_tokens,
        coalesce(sum(cost_usd), 0)::numeric(38, 6) as llm_cost_usd

    from llm_calls
    group by conversation_id

),

conversations_classified as (

    select
        *,
        -- The outcome rule: see the `conversation_outcome` doc block.
        case
            when completions > 0 then 'completed'
            when last_handoff_or_error_type = 'error' then 'errored'
            when last_handoff_or_error_type = 'handoff' then 'handed_off'
            else 'abandoned'
        end as outcome,
        {{ seconds_between('started_at', 'ended_at') }}::numeric(38, 6) as duration_seconds

    from conversation_totals

),

final as (

    select
        -- ids
        conversations_classified.conversation_id,
        conversations_classified.user_id,
        conversations_classified.session_id,

        -- strings
        conversations_classified.first_agent_name,
        conversations_classified.last_agent_name,
        agent_lists.agent_names,
        conversations_classified.outcome,

        -- numerics
        agent_lists.agents_involved,
        conversations_classified.events,
        conversations_classified.messages,
        conversations_classified.tool_calls,
        conversations_classified.handoffs,
        conversations_classified.errors,
        conversations_classified.completions,
        conversations_classified.total_tokens,
        conversations_classified.total_latency_ms,
        conversations_classified.avg_latency_ms,
        conversations_classified.duration_seconds,

        -- booleans
        conversations_classified.has_conversation_end,

        -- timestamps
        conversations_classified.started_at,
        conversations_classified.ended_at,
        conversations_classified.last_loaded_at,

        -- LLM calls (numerics), after the original columns so that their positions stay
        coalesce(conversation_llm_calls.llm_calls, 0) as llm_calls,
        coalesce(conversation_llm_calls.unpriced_llm_calls, 0) as unpriced_llm_calls,
        coalesce(conversation_llm_calls.llm_input_tokens, 0) as llm_input_tokens,
        coalesce(conversation_llm_calls.llm_output_tokens, 0) as llm_output_tokens,
        coalesce(conversation_llm_calls.llm_total_tokens, 0) as llm_total_tokens,
        coalesce(conversation_llm_calls.llm_cost_usd, 0)::numeric(38, 6) as llm_cost_usd

    from conversations_classified
    inner join agent_lists
        on conversations_classified.conversation_id = agent_lists.conversation_id
    left join conversation_llm_calls
        on conversations_classified.conversation_id = conversation_llm_calls.conversation_id

)

select * from final
