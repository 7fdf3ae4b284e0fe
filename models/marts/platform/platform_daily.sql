{{
    config(
        indexes=[
            {'columns': ['date_day'], 'unique': true},
        ],
    )
}}

with

events as (

    select * from {{ ref('stg_marketplace__events') }}
    where {{ utc_date('occurred_at') }} <= {{ marketplace_as_of_date() }}

),

invocations as (

    select * from {{ ref('int_invocations_enriched') }}
    where finished_date <= {{ marketplace_as_of_date() }}

),

first_event_date as (

    select min({{ utc_date('occurred_at') }}) as first_date
    from events

),

spine as (

    -- every day from the first marketplace event to the as-of date
    select cast(calendar.day_start as date) as date_day
    from first_event_date
    {{
        cross_join_date_series(
            'first_event_date.first_date',
            marketplace_as_of_date(),
            'day', 'calendar', 'day_start'
        )
    }}
    where first_event_date.first_date is not null

),

daily_invocations as (

    select
        finished_date as date_day,
        count(*) as invocations,
        count(*) filter (where not is_success) as errored_invocations,
        sum(revenue_usd) as gmv_usd,
        count(distinct publisher_id) as active_publishers,
        count(distinct agent_id) as active_agents,
        count(distinct tenant_id) as active_tenants

    from invocations
    group by finished_date

),

daily_installs as (

    select
        {{ utc_date('occurred_at') }} as date_day,
        count(*) filter (where event_type = 'install') as installs,
        count(*) filter (where event_type = 'uninstall') as uninstalls

    from events
    where event_type in ('install', 'uninstall')
    group by {{ utc_date('occurred_at') }}

),

final as (

    select
        spine.date_day,
        coalesce(daily_invocations.invocations, 0) as invocations,
        coalesce(daily_invocations.errored_invocations, 0) as errored_invocations,
        coalesce(daily_invocations.gmv_usd, 0) as gmv_usd,
        coalesce(daily_invocations.active_publishers, 0) as active_publishers,
        coalesce(daily_invocations.active_agents, 0) as active_agents,
        coalesce(daily_invocations.active_tenants, 0) as active_tenants,
        coalesce(daily_installs.installs, 0) as installs,
        coalesce(daily_installs.uninstalls, 0) as uninstalls

    from spine
    left join daily_invocations
        on spine.date_day = daily_invocations.date_day
    left join daily_installs
        on spine.date_day = daily_installs.date_day

)

select * from final
