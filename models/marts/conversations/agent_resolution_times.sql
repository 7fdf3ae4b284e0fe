{#-
    One row per agent: the reference's average resolution time (per conversation and agent, the
    agent's last event time minus its first, averaged over the agent's conversations), with
    the median and 95th percentile, and the same over completed conversations only.
-#}
{{
    config(
        indexes=[
            {'columns': ['agent_name'], 'unique': true},
        ],
    )
}}

with

conversation_agents as (

    select * from {{ ref('int_conversation_agents_rolled_up') }}

),

conversations as (

    select * from {{ ref('fct_conversations') }}

),

conversation_agents_with_outcome as (

    select
        conversation_agents.agent_name,
        conversation_agents.resolution_seconds,
        conversations.outcome = 'completed' as is_completed

    from conversation_agents
    inner join conversations
        on conversation_agents.conversation_id = conversations.conversation_id

),

agent_resolution as (

    select
        agent_name,
        count(*) as conversations,
        avg(resolution_seconds) as avg_resolution_seconds,
        percentile_cont(0.5) within group (
            order by resolution_seconds
        )::{{ numeric_type() }} as median_resolution_seconds,
        percentile_cont(0.95) within group (
            order by resolution_seconds
        )::{{ numeric_type() }} as p95_resolution_seconds,
        count(*) filter (where is_completed) as completed_conversations,
        avg(resolution_seconds) filter (
            where is_completed
        ) as avg_completed_resolution_seconds,
        percentile_cont(0.5) within group (
            order by resolution_seconds
        ) filter (where is_completed)::{{ numeric_type() }} as median_completed_resolution_seconds,
        percentile_cont(0.95) within group (
            order by resolution_seconds
        ) filter (where is_completed)::{{ numeric_type() }} as p95_completed_resolution_seconds

    from conversation_agents_with_outcome
    group by agent_name

),

final as (

    select
        agent_name,
        conversations,
        avg_resolution_seconds,
        median_resolution_seconds,
        p95_resolution_seconds,
        completed_conversations,
        avg_completed_resolution_seconds,
        median_completed_resolution_seconds,
        p95_completed_resolution_seconds,
        -- the names that say the method; the four above are deprecated (docs/models.md)
        median_resolution_seconds as p50_resolution_seconds_interpolated,
        p95_resolution_seconds as p95_resolution_seconds_interpolated,
        median_completed_resolution_seconds as p50_completed_resolution_seconds_interpolated,
        p95_completed_resolution_seconds as p95_completed_resolution_seconds_interpolated

    from agent_resolution

)

select * from final
