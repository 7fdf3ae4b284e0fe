{#-
    The invocations of the buckets of the widest of `live_windows_minutes` before now, from
    the rollup the loader's triggers keep in raw in each load's transaction
    (`marketplace_live_rollup`): a view, so a bucket counts an invocation as soon as the load
    that brought it commits. One row per 1-minute bucket, publisher, agent, outcome and
    duration bin. Same reading as `stg_marketplace__events`: an invocation is one
    `agent_completed` (success) or `agent_errored` event, `duration_ms` the contract's bounded
    number (read by the triggers as `json_number` reads it). What `operational_health_live`
    reads.
-#}
{#- the rollup is kept by PostgreSQL's triggers: the Spark lake has none -#}
{{ config(materialized='view', enabled=target.type != 'spark') }}

with

source as (

    select * from {{ source('marketplace', 'marketplace_live_rollup') }}
    where
        bucket_at >= {{ live_bucket(minus_minutes('now()', var('live_windows_minutes') | max)) }}
        and bucket_at <= now()

),

final as (

    select
        bucket_at,
        agent_id,
        publisher_id,
        duration_bin,
        invocations as bucket_invocations,
        duration_sum as duration_sum_ms,
        duration_min as duration_min_ms,
        duration_max as duration_max_ms,
        is_success,
        last_event_ts as bucket_last_finished_at

    from source

)

select * from final
