-- No hour can have more conversations (with a message), or more active conversations, than
-- there are conversations in total.
with

conversations_hourly as (

    select * from {{ ref('conversations_hourly') }}

),

conversations as (

    select * from {{ ref('fct_conversations') }}

),

total as (

    select count(*) as conversations from conversations

),

final as (

    select
        conversations_hourly.hour,
        conversations_hourly.conversations,
        conversations_hourly.active_conversations,
        total.conversations as total_conversations

    from conversations_hourly
    cross join total
    where
        conversations_hourly.conversations > total.conversations
        or conversations_hourly.active_conversations > total.conversations

)

select * from final
