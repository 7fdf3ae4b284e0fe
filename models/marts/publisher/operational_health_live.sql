{#-
    `operational_health` without waiting for a build: one row per publisher, agent and
    trailing window (`live_windows_minutes`: the last 5, 15 and 60 minutes, ending now),
    computed when queried, with the formulas of macros/metrics.sql. A view: an invocation
    counts as soon as the load that brought it commits. Read by `agent-loader alerts` and the
    operator.

    What it reads: the whole 10-second buckets of each window from the rollup the loader's
    triggers keep in raw (`stg_marketplace__invocation_buckets`: one row per bucket,
    publisher, agent, outcome and duration), and only the invocations of the partial buckets
    at each window's edges (after its start, and from the bucket holding now) from raw
    (`stg_marketplace__invocations_tail`); so a read costs the buckets of the widest window
    plus a few seconds of invocations, whatever the rate. Both hold every invocation once,
    with its duration read by the same macro, and the weighted formulas give the values the
    per-invocation ones do (tests/alerts/test_live_rollup.py).
-#}
{{
    config(
        materialized='view',
        post_hook=["{{ live_view_owner_rights() }}"],
    )
}}

{%- set windows = var('live_windows_minutes') -%}

with

bucketed_invocations as (

    select * from {{ ref('stg_marketplace__invocation_buckets') }}

),

recent_invocations as (

    -- only the partial buckets at the windows' edges
    select * from {{ ref('stg_marketplace__invocations_tail') }}
    where {{ tail_edges('finished_at', windows) }}

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

window_buckets as (

    -- the whole buckets of each window: from the one after the bucket holding its start to
    -- the one before the bucket holding now (macros/live_views.sql)
    select
        window_minutes,
        window_start_at,
        window_end_at,
        {{ tail_first_whole_bucket('window_start_at', 'window_end_at') }} as first_whole_bucket_at,
        {{ tail_partial_bucket('window_end_at') }} as partial_bucket_at

    from windows

),

bucket_sums as (

    -- each window's whole buckets (macros/live_views.sql), summed in one pass over the
    -- rollup into one row per publisher, agent, outcome and duration: a join of the rollup
    -- to the windows would sort every bucket row once per window
    -- noqa: disable=LT02
    select
        publisher_id,
        agent_id,
        is_success,
        duration_ms,
        {%- for minutes in windows %}
        sum(bucket_invocations) filter (
            where {{ tail_whole_buckets('bucket_at', minutes) }}
        ) as invocations_{{ minutes }},
        max(bucket_last_finished_at) filter (
            where {{ tail_whole_buckets('bucket_at', minutes) }}
        ) as last_finished_at_{{ minutes }}
        {{- ',' if not loop.last }}
        {%- endfor %}

    from bucketed_invocations
    group by publisher_id, agent_id, is_success, duration_ms
    -- noqa: enable=LT02

),

whole_buckets as (

    select
        bucket_sums.publisher_id,
        bucket_sums.agent_id,
        bucket_sums.is_success,
        bucket_sums.duration_ms,
        {{ by_window('windows.window_minutes', 'bucket_sums.invocations', windows) }}
            as invocations,
        {{ by_window('windows.window_minutes', 'bucket_sums.last_finished_at', windows) }}
            as last_finished_at,
        windows.window_minutes,
        windows.window_start_at,
        windows.window_end_at

    from bucket_sums
    cross join windows

),

partial_buckets as (

    select
        invocations.publisher_id,
        invocations.agent_id,
        invocations.is_success,
        invocations.duration_ms,
        cast(1 as bigint) as invocations,
        invocations.finished_at as last_finished_at,
        windows.window_minutes,
        windows.window_start_at,
        windows.window_end_at

    from recent_invocations as invocations
    inner join window_buckets as windows
        on
            invocations.finished_at > windows.window_start_at
            and (
                invocations.finished_at < windows.first_whole_bucket_at
                or invocations.finished_at >= windows.partial_bucket_at
            )

),

windowed as (

    select * from whole_buckets
    where invocations is not null
    union all
    select * from partial_buckets

),

durations as (

    -- one row per window, publisher, agent, outcome and duration
    select
        publisher_id,
        agent_id,
        window_minutes,
        window_start_at,
        window_end_at,
        is_success,
        duration_ms,
        sum(invocations) as invocations,
        max(last_finished_at) as last_finished_at

    from windowed
    group by
        publisher_id, agent_id, window_minutes, window_start_at, window_end_at, is_success,
        duration_ms

),

ranked as (

    select
        *,
        {{ completions_up_to_columns('publisher_id, agent_id, window_minutes') }}

    from durations

),

aggregated as (

    select
        publisher_id,
        agent_id,
        window_minutes,
        window_start_at,
        window_end_at,
        sum(invocations) as invocations,
        coalesce(sum(invocations) filter (where is_success), 0) as completed_invocations,
        coalesce(sum(invocations) filter (where not is_success), 0) as errored_invocations,
        {{ weighted_response_time_ms() }} as avg_response_time_ms,
        {{ weighted_response_time_ms(0.50) }} as p50_response_time_ms,
        {{ weighted_response_time_ms(0.95) }} as p95_response_time_ms,
        {{ weighted_response_time_ms(0.99) }} as p99_response_time_ms,
        max(last_finished_at) as last_finished_at

    from ranked
    group by publisher_id, agent_id, window_minutes, window_start_at, window_end_at

),

final as (

    -- the types of `operational_health`'s contract, so both marts give the same values
    select
        publisher_id,
        agent_id,
        cast(window_minutes as integer) as window_minutes,
        cast(invocations as bigint) as invocations,
        cast(completed_invocations as bigint) as completed_invocations,
        cast(errored_invocations as bigint) as errored_invocations,
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
