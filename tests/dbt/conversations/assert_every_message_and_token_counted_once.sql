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

counts as (

    select
        (
            select count(*) from events
            where event_type = 'message'
        ) as staged_messages,
        (select coalesce(sum(total_tokens), 0) from events) as staged_tokens,
        (select coalesce(sum(messages), 0) from conversations) as conversation_messages,
        (select coalesce(sum(total_tokens), 0) from conversations) as conversation_tokens,
        (select coalesce(sum(messages), 0) from conversations_hourly) as hourly_messages,
        (select coalesce(sum(total_tokens), 0) from conversations_hourly) as hourly_tokens

),

final as (

    select *
    from counts
    where
        conversation_messages != staged_messages
        or hourly_messages != staged_messages
        or conversation_tokens != staged_tokens
        or hourly_tokens != staged_tokens

)

select * from final
