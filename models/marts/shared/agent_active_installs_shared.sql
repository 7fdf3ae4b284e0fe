{#-
    What a publisher may see of `agent_active_installs`: its own agents only (row-level
    security on `publisher_id`), the counts null for an agent fewer than
    `min_tenants_per_aggregate` tenants ever installed, and rounded to `publish_count_step`.
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
        {{ suppress_below_min_tenants(
            coarsen_count('active_installs'), 'tenants_ever_installed'
        ) }}
            as active_installs,
        {{ suppress_below_min_tenants(
            coarsen_count('tenants_ever_installed'), 'tenants_ever_installed'
        ) }}
            as tenants_ever_installed,
        {{ suppress_below_min_tenants(
            coarsen_count('tenants_uninstalled'), 'tenants_ever_installed'
        ) }}
            as tenants_uninstalled,
        tenants_ever_installed < {{ var('min_tenants_per_aggregate') | int }}
            as has_suppressed_metrics,
        as_of_date

    from active_installs

)

select * from final
