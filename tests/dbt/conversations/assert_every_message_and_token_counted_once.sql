-- Messages and tokens add up the same per conversation and per hour as over the staged events.
with

events as (

    select * from {{ ref('stg_agent_events__events') }}

),

conversations as (

    select * from {{ ref('fct_conversations') }}

),

conversations_hourly as (

    select * from {{ ref('conversations_hourly') }}

),

totals as (

    {{
        staged_and_counted_totals({
            'messages': {
                'staged': "select count(*) from events where event_type = 'message'",
                'counted_in': {'conversations': 'messages', 'conversations_hourly': 'messages'},
            },
            'total_tokens': {
                'staged': "select coalesce(sum(total_tokens), 0) from events",
                'counted_in': {
                    'conversations': 'total_tokens', 'conversations_hourly': 'total_tokens'
                },
            },
        })
    }}

),

final as (

    select * from totals
    where counted_total != staged_total

)

select * from final
