{#-
    One row per UTC hour with at least one conversation event: the reference's conversations per
    hour (distinct conversations with a message event in the hour) over all hours, plus the
    hour's messages, tokens and errors. Rebuilt as a table from the per-conversation-hour
    rollup, which is incremental.
-#}
{{
    config(
        indexes=[
            {'columns': ['hour'], 'unique': true},
        ],
    )
}}

with

conversation_hours as (

    select * from {{ ref('int_conversation_hours_rolled_up') }}

),

hourly as (

    select
        hour,
        -- The reference's definition: see the `conversations_per_hour` doc block.
        count(*) filter (where has_message) as conversations,
        count(*) as active_conversations,
        sum(messages)::bigint as messages,
        sum(total_tokens)::bigint as total_tokens,
        sum(errors)::bigint as errors

    from conversation_hours
    group by hour

),

final as (

    select
        hour,
        conversations,
        active_conversations,
        messages,
        total_tokens,
        errors

    from hourly

)

select * from final
