{{
    config(
        indexes=[
            {'columns': ['tenant_id', 'publisher_id', 'agent_id'], 'unique': true},
        ],
    )
}}

with

installs as (

    select * from {{ ref('int_installs_dated') }}

),

install_events as (

    select
        install_event_id as event_id,
        publisher_id,
        agent_id,
        tenant_id,
        event_type,
        plan_name,
        occurred_at,
        loaded_at

    from installs
    where occurred_date <= {{ marketplace_as_of_date() }}

),

ranked as (

    select
        *,
        -- the latest event decides the state; ties broken by load order, then id
        row_number() over (
            partition by publisher_id, agent_id, tenant_id
            order by occurred_at desc, loaded_at desc, event_id desc
        ) as recency_rank

    from install_events

),

histories as (

    select
        publisher_id,
        agent_id,
        tenant_id,
        count(*) filter (where event_type = 'install') as install_events,
        count(*) filter (where event_type = 'uninstall') as uninstall_events,
        min(occurred_at) filter (where event_type = 'install') as first_installed_at,
        max(occurred_at) filter (where event_type = 'install') as last_installed_at,
        max(occurred_at) filter (where event_type = 'uninstall') as last_uninstalled_at

    from install_events
    group by publisher_id, agent_id, tenant_id

),

final as (

    select
        histories.publisher_id,
        histories.agent_id,
        histories.tenant_id,
        latest.event_type as latest_event_type,
        latest.plan_name,
        histories.install_events,
        histories.uninstall_events,
        latest.event_type = 'install' as is_installed,
        {{ marketplace_as_of_date() }} as as_of_date,
        histories.first_installed_at,
        histories.last_installed_at,
        histories.last_uninstalled_at,
        latest.occurred_at as state_changed_at

    from histories
    inner join ranked as latest
        on
            histories.publisher_id = latest.publisher_id
            and histories.agent_id = latest.agent_id
            and histories.tenant_id = latest.tenant_id
            and latest.recency_rank = 1

)

select * from final
