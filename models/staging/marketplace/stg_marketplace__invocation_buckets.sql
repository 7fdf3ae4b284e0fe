{#-
    The invocations of the last `live_windows_minutes` (the widest) counted by 10-second bucket,
    publisher, agent, outcome and duration, from the rollup the loader's triggers keep in raw
    (`marketplace_tail_rollup`): a view, so a bucket counts a row as soon as the load that
    brought it commits. Same reading as `stg_marketplace__invocations_tail` (an invocation is
    one `agent_completed` or `agent_errored` event, `duration_ms` the contract's bounded
    number, by the same macro on the same JSON value). What `operational_health_live` reads
    for the whole buckets of its windows. On the Spark lake the rollup is an empty table and
    the live view reads every invocation from the raw tail.
-#}
{{ config(materialized='view') }}

with

source as (

    select * from {{ source('marketplace', 'marketplace_tail_rollup') }}
    where
        bucket_at >= {{ tail_bucket(minus_minutes('now()', var('live_windows_minutes') | max)) }}
        and event_type in ('agent_completed', 'agent_errored')

),

final as (

    select
        bucket_at,
        agent_id,
        publisher_id,
        {{ json_number('duration', 'duration_ms', 'numeric', 0, 1e12) }} as duration_ms,
        event_type = 'agent_completed' as is_success,
        events as bucket_invocations,
        last_event_ts as bucket_last_finished_at

    from source

)

select * from final
