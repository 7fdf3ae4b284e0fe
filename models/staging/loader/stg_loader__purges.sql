{#-
    One row per completed `agent-loader purge`, as the loader records it. The retention
    pre-hooks of the incremental models read these rows (macros/retention.sql); the
    intermediate and mart models depend on this view (declared by `incremental_model()`), so
    retention's dependency shows in the lineage.
-#}
{{ config(materialized='view') }}

with

source as (

    select * from {{ source('loader', 'purges') }}

),

final as (

    select
        -- ids
        purge_id,

        -- retention window
        older_than,
        cutoff,

        -- rows deleted
        agent_events,
        marketplace_events,
        quarantine,

        -- timestamps
        started_at,
        finished_at

    from source

)

select * from final
