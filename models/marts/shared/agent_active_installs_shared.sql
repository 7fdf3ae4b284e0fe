{#-
    What a publisher may see of `agent_active_installs`: its own agents only (row-level
    security on `publisher_id`), and only those at least `min_tenants_per_aggregate` tenants
    ever installed: an agent fewer tenants installed is not a row at all (its row would say
    that a few tenants installed it). Counts rounded to `publish_count_step`.
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

final as (

    select
        publisher_id,
        agent_id,
        {{ coarsen_count('active_installs') }} as active_installs,
        {{ coarsen_count('tenants_ever_installed') }} as tenants_ever_installed,
        {{ coarsen_count('tenants_uninstalled') }} as tenants_uninstalled,
        -- kept for the mart's contract: a suppressed agent is not a row
        false as has_suppressed_metrics,
        as_of_date

    from active_installs
    where tenants_ever_installed >= {{ var('min_tenants_per_aggregate') | int }}

)

select * from final
