{#-
    The invocations of the buckets the windows of `live_windows_minutes` read now, from the
    rollup the loader's triggers keep in raw in each load's transaction
    (`marketplace_live_rollup`): a view, so a bucket counts an invocation as soon as the load
    that brought it commits. One row per bucket (1 or 10 minutes), publisher, agent, outcome
    and duration bin: the 10-minute buckets whole in a window and the 1-minute ones around
    them (`live_window_interior_start` in macros/live_views.sql), not the hour's minutes.
    Same reading as `stg_marketplace__events`: an invocation is one `agent_completed`
    (success) or `agent_errored` event, `duration_ms` the contract's bounded number (read by
    the triggers as `json_number` reads it). What `operational_health_live` reads.
-#}
{#- the rollup is kept by PostgreSQL's triggers: the Spark lake has none -#}
{{ config(materialized='view', enabled=target.type != 'spark') }}

{%- set windows = var('live_windows_minutes') %}

with

source as (

    -- the rows some window reads (`bin_sums` in macros/operational_windows.sql), each a
    -- range of the key's first column: the 10-minute buckets of the widest window's interior,
    -- and the 1-minute buckets up to now after the interiors' end and before each window's
    -- interior
    select * from {{ source('marketplace', 'marketplace_live_rollup') }}
    where
        (
            bucket_minutes = 10
            and bucket_at >= {{ live_window_interior_start('now()', windows | max) }}
            and bucket_at < {{ live_window_interior_end('now()') }}
        )
        or (
            bucket_minutes = 1
            and bucket_at >= {{ live_window_interior_end('now()') }}
            and bucket_at <= now()
        )
        {% for minutes in windows -%}
            or (
                bucket_minutes = 1
                and bucket_at >= {{ live_window_start('now()', minutes) }}
                and bucket_at < {{ live_window_interior_start('now()', minutes) }}
                and bucket_at <= now()
            )
        {% endfor %}

),

final as (

    select
        bucket_at,
        bucket_minutes,
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
