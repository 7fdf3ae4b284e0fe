{{
    config(
        indexes=[
            {'columns': ['publisher_id', 'agent_id'], 'unique': true},
        ],
    )
}}

with

agent_installs as (

    select * from {{ ref('agent_installs') }}

),

final as (

    select
        publisher_id,
        agent_id,
        count(*) filter (where is_installed) as active_installs,
        count(*) as tenants_ever_installed,
        count(*) filter (where not is_installed) as tenants_uninstalled,
        {{ marketplace_as_of_date() }} as as_of_date

    from agent_installs
    group by publisher_id, agent_id

)

select * from final
