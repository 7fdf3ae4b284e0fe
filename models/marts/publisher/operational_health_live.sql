{#-
    `operational_health` without waiting for a build: one row per publisher, agent and
    trailing window (`live_windows_minutes`: the last 5, 15 and 60 minutes, ending now),
    computed when queried from the raw tail (`stg_marketplace__invocations_tail`), with the
    formulas of macros/metrics.sql. A view: an invocation counts as soon as the load that
    brought it commits. Read by `agent-loader alerts` and the operator.
-#}
{{
    config(
        materialized='view',
        post_hook=["{{ live_view_owner_rights() }}"],
    )
}}

{%- set windows = var('live_windows_minutes') -%}

with

recent_invocations as (

    select * from {{ ref('stg_marketplace__invocations_tail') }}

),

clock as (

    -- one instant for every window of the query
    select now() as window_end_at

),

windows as (

    select
        configured.window_minutes,
        {{ minus_minutes('clock.window_end_at', 'configured.window_minutes') }}
            as window_start_at,
        clock.window_end_at

    from clock
    {{ cross_join_values(windows, 'configured', 'window_minutes') }}

),

windowed as (

    select
        invocations.publisher_id,
        invocations.agent_id,
        invocations.is_success,
        invocations.duration_ms,
        invocations.finished_at,
        windows.window_minutes,
        windows.window_start_at,
        windows.window_end_at

    from recent_invocations as invocations
    inner join windows
        on invocations.finished_at > windows.window_start_at

),

aggregated as (

    select
        publisher_id,
        agent_id,
        window_minutes,
        window_start_at,
        window_end_at,
        count(*) as invocations,
        count(*) filter (where is_success) as completed_invocations,
        count(*) filter (where not is_success) as errored_invocations,
        {{ response_time_ms() }} as avg_response_time_ms,
        {{ response_time_ms(0.50) }} as p50_response_time_ms,
        {{ response_time_ms(0.95) }} as p95_response_time_ms,
        {{ response_time_ms(0.99) }} as p99_response_time_ms,
        max(finished_at) as last_finished_at

    from windowed
    group by publisher_id, agent_id, window_minutes, window_start_at, window_end_at

),

final as (

    -- the types of `operational_health`'s contract, so both marts give the same values
    select
        publisher_id,
        agent_id,
        cast(window_minutes as integer) as window_minutes,
        invocations,
        completed_invocations,
        errored_invocations,
        cast(
            {{ error_rate('errored_invocations', 'invocations') }} as numeric(38, 8)
        ) as error_rate,
        cast(avg_response_time_ms as numeric(38, 6)) as avg_response_time_ms,
        cast(p50_response_time_ms as numeric(38, 6)) as p50_response_time_ms,
        cast(p95_response_time_ms as numeric(38, 6)) as p95_response_time_ms,
        cast(p99_response_time_ms as numeric(38, 6)) as p99_response_time_ms,
        window_start_at,
        window_end_at,
        last_finished_at

    from aggregated

)

select * from final
