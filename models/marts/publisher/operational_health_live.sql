{#-
    `operational_health` without waiting for a build: one row per publisher, agent and
    trailing window (`live_windows_minutes`: the last 5, 15 and 60 minutes, ending now),
    computed when queried from the 1-minute buckets the loader keeps in the transaction of
    each load (`stg_marketplace__invocation_buckets`), with the window aggregation and the
    formulas of `operational_health` (macros/operational_windows.sql, macros/metrics.sql).
    A view: an invocation counts as soon as the load that brought it commits; a read costs
    the buckets of the widest window, not its invocations. Read by `agent-loader alerts` and
    the operator.
-#}
{{
    config(
        materialized='view',
        post_hook=["{{ live_view_owner_rights() }}"],
    )
}}

with

invocations as (

    select * from {{ ref('stg_marketplace__invocation_buckets') }}

),

clock as (

    -- one instant for every window of the query
    select now() as window_end_at

),

{{ operational_health_windows(var('live_windows_minutes'), rolled_up=true) }}

select * from final
