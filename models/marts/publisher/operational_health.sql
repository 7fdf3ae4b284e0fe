{#-
    One row per publisher, agent and trailing window (`operational_windows_minutes`: the last
    15 minutes, hour and day, ending at the newest invocation loaded): invocations, error rate
    and response-time percentiles, for catching issues as they happen. Built by the
    `realtime` cadence from the freshest loaded invocations; a pair with no invocation in a
    window has no row for it; with no invocation in the last two days the mart is empty.
-#}
{{
    config(
        indexes=[
            {'columns': ['publisher_id', 'agent_id', 'window_minutes'], 'unique': true},
        ],
    )
}}

{%- set windows = var('operational_windows_minutes') -%}

with

recent_invocations as (

    -- twice the widest window back from now: the BRIN index on finished_at keeps this a
    -- range scan, and it holds the widest window however old the newest invocation is
    -- within a day
    select * from {{ ref('int_invocations_enriched') }}
    where
        finished_at > {{ minus_minutes('now()', 2 * (windows | max)) }}
        and finished_at <= now()

),

newest as (

    -- the windows end at the newest invocation, not at the build time: the mart is the
    -- same whenever it is rebuilt from the same data, and a stalled feed shows as an old
    -- `window_end_at`
    select max(finished_at) as window_end_at
    from recent_invocations

),

windows as (

    select
        configured.window_minutes,
        {{ minus_minutes('newest.window_end_at', 'configured.window_minutes') }}
            as window_start_at,
        newest.window_end_at

    from newest
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

    select
        publisher_id,
        agent_id,
        cast(window_minutes as integer) as window_minutes,
        invocations,
        completed_invocations,
        errored_invocations,
        {{ error_rate('errored_invocations', 'invocations') }} as error_rate,
        avg_response_time_ms,
        p50_response_time_ms,
        p95_response_time_ms,
        p99_response_time_ms,
        window_start_at,
        window_end_at,
        last_finished_at

    from aggregated

)

select * from final
