{#-
    One row per publisher with any marketplace event: the UTC day of its first event. The
    marts that list every publisher (the dashboard) or start a calendar at the first event
    (the platform's days) read it instead of every staged event.
    Incremental (macros/incremental_marts.sql): the publishers of the events loaded since the
    high-water mark minus `lookback_hours` keep the earlier of their first day here and in
    the new events; after a purge the table is rebuilt from staging.
-#}
{{
    incremental_model(
        unique_key='publisher_id',
        retention=retention_by_rebuild(
            date_column='first_event_date',
        ),
        indexes=[
            {'columns': ['publisher_id'], 'unique': true},
        ],
    )
}}

with

events as (

    select
        events.publisher_id,
        {{ utc_date('events.occurred_at') }} as first_event_date,
        events.loaded_at as last_loaded_at

    from {{ ref('stg_marketplace__events') }} as events
    {% if is_incremental_update() %}
        where {{ loaded_since_built('events') }}

        union all

        select
            built.publisher_id,
            built.first_event_date,
            built.last_loaded_at

        from {{ this }} as built
    {% endif %}

),

final as (

    select
        publisher_id,
        min(first_event_date) as first_event_date,
        max(last_loaded_at) as last_loaded_at

    from events
    group by publisher_id

)

select * from final
