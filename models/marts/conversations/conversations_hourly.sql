{#-
    One row per UTC hour with at least one conversation event: the reference's conversations per
    hour (distinct conversations with a message event in the hour) over all hours, plus the
    hour's messages, tokens and errors. Summed from the per-conversation-hour rollup.

    Incremental (macros/incremental_marts.sql): a build recomputes the hours with a rollup row
    loaded since this table's high-water mark minus `lookback_hours`; an hour that has passed
    changes only by late events, which land there.
-#}
{{
    incremental_model(
        unique_key='hour',
        retention=retention_by_rebuild(
            date_column='hour',
        ),
        indexes=[
            {'columns': ['hour'], 'unique': true},
        ],
    )
}}

with

conversation_hours as (

    select * from {{ ref('int_conversation_hours_rolled_up') }}

    {% if is_incremental_update() %}
        where hour in (
            select touched.hour
            from {{ ref('int_conversation_hours_rolled_up') }} as touched
            where {{ loaded_since_built('touched', 'last_loaded_at') }}
        )
    {% endif %}

),

hourly as (

    select
        hour,
        -- The reference's definition: see the `conversations_per_hour` doc block.
        count(*) filter (where has_message) as conversations,
        count(*) as active_conversations,
        sum(messages)::bigint as messages,
        sum(total_tokens)::bigint as total_tokens,
        sum(errors)::bigint as errors,
        max(last_loaded_at) as last_loaded_at

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
        errors,
        last_loaded_at

    from hourly

)

select * from final
