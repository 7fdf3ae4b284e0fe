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

counts as (

    select
        (
            select count(*) from events
            where event_type = 'error'
        ) as staged_errors,
        (select coalesce(sum(errors), 0) from conversations) as conversation_errors,
        (select coalesce(sum(errors), 0) from conversations_hourly) as hourly_errors,
        (select coalesce(sum(occurrences), 0) from error_types_ranked) as error_type_occurrences

),

final as (

    select *
    from counts
    where
        conversation_errors != staged_errors
        or hourly_errors != staged_errors
        or error_type_occurrences != staged_errors

)

select * from final
