{#-
    What a publisher may see of `agent_active_installs`: its own agents only (row-level
    security on `publisher_id`), and only those at least `min_tenants_per_aggregate` tenants
    ever installed: an agent fewer tenants installed is not a row at all (its row would say
    that a few tenants installed it). Counts rounded to `publish_count_step`. Which column
    is published how: its mapping in macros/shared_marts.sql.
-#}
{{
    config(
        indexes=[
            {'columns': ['publisher_id', 'agent_id'], 'unique': true},
        ],
    )
}}

with

active_installs as (

    select * from {{ ref('agent_active_installs') }}

),

published as (

    select
        *,
        -- kept for the mart's contract: a suppressed agent is not a row
        false as has_suppressed_metrics

    from active_installs
    where tenants_ever_installed >= {{ var('min_tenants_per_aggregate') | int }}

),

final as (

    -- the columns of its mapping (macros/shared_marts.sql)
    select
        {{ shared_mart_columns('agent_active_installs_shared') }}

    from published

)

select * from final
