{#-
    One row per install state change (an `install` or `uninstall` event) with its UTC day.
    The install marts and the platform's daily installs read it instead of staging.
    Incremental like int_invocations_enriched: the events loaded since the high-water mark
    minus `lookback_hours` that are not here yet.
-#}
{{
    incremental_model(
        retention=retention_by_rows(
            time_column='occurred_at',
            key=['install_event_id', 'publisher_id'],
            kept_in="ref('stg_marketplace__events')",
            kept_key=['event_id', 'publisher_id'],
        ),
        indexes=[
            {'columns': ['install_event_id', 'publisher_id'], 'unique': true},
            {'columns': ['publisher_id', 'agent_id', 'tenant_id']},
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
                'events', ['event_id', 'publisher_id'], ['install_event_id', 'publisher_id']
            )
        }}
    {% endif %}

),

final as (

    select
        event_id as install_event_id,
        publisher_id,
        agent_id,
        tenant_id,
        event_type,
        plan_name,
        {{ utc_date('occurred_at') }} as occurred_date,
        occurred_at,
        loaded_at

    from events
    where event_type in ('install', 'uninstall')

)

select * from final
