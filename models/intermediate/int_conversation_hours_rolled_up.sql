{#-
    One row per conversation and UTC hour in which the conversation has an event: its
    messages, tokens and errors in that hour. conversations_hourly sums these rows, so the
    hourly mart reads one row per conversation-hour instead of every event.

    Incremental like fct_conversations: every conversation with an event loaded
    since the high-water mark minus `lookback_hours` is recomputed from all of its events and
    replaced whole (delete+insert keyed on conversation_id, which deletes all of its hours).
-#}
{{
    incremental_model(
        unique_key='conversation_id',
        retention=retention_by_rows(
            time_column='hour',
            key='conversation_id',
            kept_in="ref('stg_agent_events__events')",
        ),
        indexes=[
            {'columns': ['conversation_id', 'hour'], 'unique': true},
            {'columns': ['hour']},
            {'columns': ['last_loaded_at']},
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
        {{ where_conversation_touched('hour') }}
    {% endif %}

),

conversation_hours as (

    select
        conversation_id,
        -- UTC hours whatever the session's TimeZone. `hour` is the mart's contract name
        -- (a non-reserved keyword in PostgreSQL, hence the RF04 exemption).
        {{ utc_hour('occurred_at') }} as hour,  -- noqa: RF04
        count(*) as events,
        count(*) filter (where event_type = 'message') as messages,
        count(*) filter (where event_type = 'error') as errors,
        coalesce(sum(total_tokens), 0)::bigint as total_tokens,
        bool_or(event_type = 'message') as has_message,
        max(loaded_at) as last_loaded_at

    from conversation_events
    group by conversation_id, {{ utc_hour('occurred_at') }}

),

final as (

    select
        conversation_id,
        events,
        messages,
        errors,
        total_tokens,
        has_message,
        hour,
        last_loaded_at

    from conversation_hours

)

select * from final
