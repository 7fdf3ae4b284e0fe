-- noqa: disable=LT02
-- (the CTEs below are indented as they are in the models that call the macro, which the
-- linter, reading the macro file alone, cannot see)
{#-
    The CTEs `windows` to `final` of `operational_health` and `operational_health_live`,
    written once: one row per publisher, agent and trailing window of `windows` (minutes)
    ending at `window_end_at` (a column of the one-row CTE `clock`), with the formulas of
    macros/metrics.sql, in the types of the marts' contract. The model names its input CTE
    `invocations` and ends with `select * from final`.

    `rolled_up` false: `invocations` holds one row per invocation (`publisher_id`, `agent_id`,
    `is_success`, `duration_ms`, `finished_at`, `loaded_at`: the rows gain `last_loaded_at`);
    a window is (`window_end_at` minus its
    minutes, `window_end_at`], percentiles are exact (`response_time_ms`).
    `rolled_up` true: `invocations` holds the live rollup's rows (one per 1-minute bucket,
    publisher, agent, outcome and duration bin: `stg_marketplace__invocation_buckets`); a
    window is its whole buckets from the one holding `window_end_at` minus its minutes, so it
    starts at that bucket's start (`window_start_at`, up to a minute earlier), and percentiles
    come from the bins (`binned_response_time_ms`, its error bound there). The buckets are
    summed per publisher, agent, outcome and bin for every window in one pass (`bin_sums`):
    a join of the buckets to the windows would sort each bucket row once per window.
-#}
{% macro operational_health_windows(windows, rolled_up=false) -%}
{%- set start_at = minus_minutes('clock.window_end_at', 'configured.window_minutes') -%}
{%- set rolled_up_ctes -%}
bin_sums as (

    -- one row per publisher, agent, outcome and duration bin, with each window's sums
    select
        invocations.publisher_id,
        invocations.agent_id,
        invocations.is_success,
        invocations.duration_bin,
        {%- for minutes in windows %}
        {%- set in_window = 'invocations.bucket_at >= '
            ~ live_bucket(minus_minutes('clock.window_end_at', minutes)) %}
        sum(invocations.bucket_invocations) filter (where {{ in_window }})
            as invocations_{{ minutes }},
        sum(invocations.duration_sum_ms) filter (where {{ in_window }})
            as duration_sum_ms_{{ minutes }},
        min(invocations.duration_min_ms) filter (where {{ in_window }})
            as duration_min_ms_{{ minutes }},
        max(invocations.duration_max_ms) filter (where {{ in_window }})
            as duration_max_ms_{{ minutes }},
        max(invocations.bucket_last_finished_at) filter (where {{ in_window }})
            as last_finished_at_{{ minutes }}{{ ',' if not loop.last }}
        {%- endfor %}

    from invocations
    cross join clock
    group by
        invocations.publisher_id,
        invocations.agent_id,
        invocations.is_success,
        invocations.duration_bin

),

windowed as (

    select
        bin_sums.publisher_id,
        bin_sums.agent_id,
        windows.window_minutes,
        windows.window_start_at,
        windows.window_end_at,
        bin_sums.is_success,
        bin_sums.duration_bin,
        {%- for column in ['invocations', 'duration_sum_ms', 'duration_min_ms',
            'duration_max_ms', 'last_finished_at'] %}
        case windows.window_minutes
            {%- for minutes in windows %}
            when {{ minutes }} then bin_sums.{{ column }}_{{ minutes }}
            {%- endfor %}
        end as {{ column }}{{ ',' if not loop.last }}
        {%- endfor %}

    from bin_sums
    cross join windows

),

binned as (

    -- the window's rows with a bucket in it, with the timed completions up to the row's
    -- bin and in the whole window (what `binned_response_time_ms` reads)
    select
        *,
        sum(invocations) filter (where is_success and duration_bin >= 0) over (
            partition by publisher_id, agent_id, window_minutes order by duration_bin
        ) as timed_completions_up_to,
        sum(invocations) filter (where is_success and duration_bin >= 0) over (
            partition by publisher_id, agent_id, window_minutes
        ) as timed_completions

    from windowed
    where invocations is not null

),
{%- endset -%}
{%- set invocation_ctes -%}
windowed as (

    select
        invocations.*,
        windows.window_minutes,
        windows.window_start_at,
        windows.window_end_at

    from invocations
    inner join windows
        on invocations.finished_at > windows.window_start_at

),
{%- endset -%}
{%- set rolled_up_measures -%}
        sum(invocations) as invocations,
        coalesce(sum(invocations) filter (where is_success), 0) as completed_invocations,
        coalesce(sum(invocations) filter (where not is_success), 0) as errored_invocations,
        {{ binned_response_time_ms() }} as avg_response_time_ms,
        {{ binned_response_time_ms(0.50) }} as p50_response_time_ms,
        {{ binned_response_time_ms(0.95) }} as p95_response_time_ms,
        {{ binned_response_time_ms(0.99) }} as p99_response_time_ms,
        max(last_finished_at) as last_finished_at
{%- endset -%}
{%- set invocation_measures -%}
        count(*) as invocations,
        count(*) filter (where is_success) as completed_invocations,
        count(*) filter (where not is_success) as errored_invocations,
        {{ response_time_ms() }} as avg_response_time_ms,
        {{ response_time_ms(0.50) }} as p50_response_time_ms,
        {{ response_time_ms(0.95) }} as p95_response_time_ms,
        {{ response_time_ms(0.99) }} as p99_response_time_ms,
        max(finished_at) as last_finished_at,
        max(loaded_at) as last_loaded_at
{%- endset -%}
windows as (

    select
        configured.window_minutes,
        {{ live_bucket(start_at) if rolled_up else start_at }} as window_start_at,
        clock.window_end_at

    from clock
    {{ cross_join_values(windows, 'configured', 'window_minutes') }}

),

{{ rolled_up_ctes if rolled_up else invocation_ctes }}

aggregated as (

    select
        publisher_id,
        agent_id,
        window_minutes,
        window_start_at,
        window_end_at,
        {{ rolled_up_measures if rolled_up else invocation_measures }}

    from {{ 'binned' if rolled_up else 'windowed' }}
    group by publisher_id, agent_id, window_minutes, window_start_at, window_end_at

),

final as (

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
        last_finished_at{{ ',' if not rolled_up }}
        {#- the live view has no load times: its rows are as fresh as the query #}
        {{ 'last_loaded_at' if not rolled_up }}

    from aggregated

)
{%- endmacro %}
