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

invocations as (

    -- twice the widest window back from now: the BRIN index on finished_at keeps this a
    -- range scan, and it holds the widest window however old the newest invocation is
    -- within a day
    select * from {{ ref('int_invocations_enriched') }}
    where
        finished_at > {{ minus_minutes('now()', 2 * (windows | max)) }}
        and finished_at <= now()

),

clock as (

    -- the windows end at the newest invocation, not at the build time: the mart is the
    -- same whenever it is rebuilt from the same data, and a stalled feed shows as an old
    -- `window_end_at`
    select max(finished_at) as window_end_at
    from invocations

),

{{ operational_health_windows(windows) }}

select * from final
