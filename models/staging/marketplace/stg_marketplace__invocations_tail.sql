{#-
    The invocations of the last `live_windows_minutes` (the widest), read from the raw table at
    query time: a view, so a row is here as soon as the load that brought it commits, with no
    dbt build in between (what `operational_health_live` reads). Same reading as
    `stg_marketplace__events` and `int_invocations_enriched`: an invocation is one
    `agent_completed` (success) or `agent_errored` event, `duration_ms` the contract's bounded
    number.
-#}
{{ config(materialized='view') }}

with

source as (

    -- the BRIN index on event_ts keeps this a range scan of the tail
    select * from {{ source('marketplace', 'marketplace_events') }}
    where
        event_ts > {{ minus_minutes('now()', var('live_windows_minutes') | max) }}
        and event_ts <= now()
        and event_type in ('agent_completed', 'agent_errored')

),

final as (

    select
        id as invocation_id,
        agent_id,
        publisher_id,
        {{ json_number('properties', 'duration_ms', 'numeric', 0, 1e12) }} as duration_ms,
        event_type = 'agent_completed' as is_success,
        event_ts as finished_at,
        loaded_at

    from source

)

select * from final
