{#-
    One row per conversation `error` event: its error type, conversation and time.
    error_types_ranked reads it instead of every staged event.
    Incremental like int_ratings_dated: the events loaded since the high-water mark minus
    `lookback_hours` that are not here yet.
-#}
{{
    incremental_model(
        retention=retention_by_rows(
            time_column='occurred_at',
            key=['error_id', 'agent_name'],
            kept_in="ref('stg_agent_events__events')",
            kept_key=['event_id', 'agent_name'],
        ),
        indexes=[
            {'columns': ['error_id', 'agent_name'], 'unique': true},
            {'columns': ['loaded_at']},
        ],
    )
}}

with

events as (

    select * from {{ ref('stg_agent_events__events') }} as events

    {% if is_incremental() %}
        {{ where_not_built_yet('events', ['event_id', 'agent_name'], ['error_id', 'agent_name']) }}
    {% endif %}

),

final as (

    select
        event_id as error_id,
        agent_name,
        conversation_id,
        error_type,
        occurred_at,
        loaded_at

    from events
    where event_type = 'error'

)

select * from final
