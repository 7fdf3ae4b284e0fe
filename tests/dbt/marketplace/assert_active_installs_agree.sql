-- A publisher's `active_installs` on the dashboard is the sum over its agents in
-- `agent_active_installs`. Returns the publishers where they disagree.
with

publisher_dashboard as (

    select * from {{ ref('publisher_dashboard') }}

),

agent_active_installs as (

    select * from {{ ref('agent_active_installs') }}

),

agent_totals as (

    select
        publisher_id,
        sum(active_installs) as active_installs

    from agent_active_installs
    group by publisher_id

)

select
    publisher_dashboard.publisher_id,
    publisher_dashboard.active_installs,
    agent_totals.active_installs as agent_active_installs

from publisher_dashboard
left join agent_totals
    on publisher_dashboard.publisher_id = agent_totals.publisher_id
where publisher_dashboard.active_installs != coalesce(agent_totals.active_installs, 0)
