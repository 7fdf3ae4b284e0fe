{#-
    One row per rating (a `user_feedback` event): who rated whose agent, the rating and its
    UTC day. The marts that show satisfaction read it instead of staging.
    Incremental like int_invocations_enriched: the events loaded since the high-water mark
    minus `lookback_hours` that are not here yet.
-#}
{{
    incremental_model(
        retention=retention_by_rows(
            time_column='rated_at',
            key=['rating_id', 'publisher_id'],
            kept_in="ref('stg_marketplace__events')",
            kept_key=['event_id', 'publisher_id'],
        ),
        indexes=[
            {'columns': ['rating_id', 'publisher_id'], 'unique': true},
            {'columns': ['publisher_id', 'rated_date']},
            {'columns': ['loaded_at']},
        ],
    )
}}

with

events as (

    select * from {{ ref('stg_marketplace__events') }} as events

    {% if is_incremental() %}
        {{
            where_not_built_yet(
                'events', ['event_id', 'publisher_id'], ['rating_id', 'publisher_id']
            )
        }}
    {% endif %}

),

final as (

    select
        event_id as rating_id,
        publisher_id,
        agent_id,
        tenant_id,
        rating,
        {{ utc_date('occurred_at') }} as rated_date,
        occurred_at as rated_at,
        loaded_at

    from events
    where event_type = 'user_feedback'

)

select * from final
