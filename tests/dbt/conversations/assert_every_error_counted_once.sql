-- Every error event is counted exactly once in each mart that counts errors: the staged
-- error events, the conversations' errors, the hours' errors and the error types'
-- occurrences all agree.
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

error_types_ranked as (

    select * from {{ ref('error_types_ranked') }}

),

totals as (

    {{
        staged_and_counted_totals({
            'errors': {
                'staged': "select count(*) from events where event_type = 'error'",
                'counted_in': {
                    'conversations': 'errors',
                    'conversations_hourly': 'errors',
                    'error_types_ranked': 'occurrences',
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
