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
    where {{ utc_date('event_at') }} <= {{ marketplace_as_of_date() }}

),

invocations as (

    select * from {{ ref('int_invocations_enriched') }}
    where finished_date <= {{ marketplace_as_of_date() }}

),

spine as (

    -- every day from the first marketplace event to the as-of date
    select cast(days.day_start as date) as date_day
    from (select min({{ utc_date('event_at') }}) as first_date from events) as bounds
    cross join lateral generate_series(
        bounds.first_date,
        {{ marketplace_as_of_date() }},
        interval '1 day'
    ) as days (day_start)
    where bounds.first_date is not null

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
        {{ utc_date('event_at') }} as date_day,
        count(*) filter (where event_type = 'install') as installs,
        count(*) filter (where event_type = 'uninstall') as uninstalls

    from events
    where event_type in ('install', 'uninstall')
    group by {{ utc_date('event_at') }}

),

final as (

    select
        coalesce(daily_invocations.invocations, 0) as invocations,
        coalesce(daily_invocations.errored_invocations, 0) as errored_invocations,
        coalesce(daily_invocations.gmv_usd, 0) as gmv_usd,
        coalesce(daily_invocations.active_publishers, 0) as active_publishers,
        coalesce(daily_invocations.active_agents, 0) as active_agents,
        coalesce(daily_invocations.active_tenants, 0) as active_tenants,
        coalesce(daily_installs.installs, 0) as installs,
        coalesce(daily_installs.uninstalls, 0) as uninstalls,
        spine.date_day

    from spine
    left join daily_invocations
        on spine.date_day = daily_invocations.date_day
    left join daily_installs
        on spine.date_day = daily_installs.date_day

)

select * from final
