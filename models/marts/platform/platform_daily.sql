{#-
    Incremental (macros/incremental_marts.sql): a build recomputes the days with an invocation
    or install event loaded since this table's high-water mark minus `lookback_hours`, and
    the calendar days missing here (new days, an earlier first day). Other days are final.
-#}
{{
    incremental_model(
        unique_key='date_day',
        retention=retention_by_rebuild(
            date_column='date_day',
            as_of_date='marketplace_as_of_date()',
        ),
        indexes=[
            {'columns': ['date_day'], 'unique': true},
        ],
    )
}}

with

first_event_date as (

    select min(first_event_date) as first_date
    from {{ ref('int_marketplace_publishers') }}
    where first_event_date <= {{ marketplace_as_of_date() }}

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

days_to_build as (

    select spine.date_day
    from spine
    {% if is_incremental_update() %}
        where
            spine.date_day in (
                select invocations.finished_date
                from {{ ref('int_invocations_enriched') }} as invocations
                where {{ loaded_since_built('invocations') }}

                union

                select installs.occurred_date
                from {{ ref('int_installs_dated') }} as installs
                where {{ loaded_since_built('installs') }}
            )
            or spine.date_day not in (select built.date_day from {{ this }} as built)
    {% endif %}

),

daily_invocations as (

    select
        invocations.finished_date as date_day,
        count(*) as invocations,
        count(*) filter (where not invocations.is_success) as errored_invocations,
        sum(invocations.revenue_usd) as gmv_usd,
        count(distinct invocations.publisher_id) as active_publishers,
        count(distinct invocations.agent_id) as active_agents,
        count(distinct invocations.tenant_id) as active_tenants,
        max(invocations.loaded_at) as last_loaded_at

    from {{ ref('int_invocations_enriched') }} as invocations
    where invocations.finished_date in (select days_to_build.date_day from days_to_build)
    group by invocations.finished_date

),

daily_installs as (

    select
        installs.occurred_date as date_day,
        count(*) filter (where installs.event_type = 'install') as installs,
        count(*) filter (where installs.event_type = 'uninstall') as uninstalls,
        max(installs.loaded_at) as last_loaded_at

    from {{ ref('int_installs_dated') }} as installs
    where installs.occurred_date in (select days_to_build.date_day from days_to_build)
    group by installs.occurred_date

),

-- Cast to the contract's scale here: an incremental run compares the new rows' column types
-- with the table's (on_schema_change), and an untyped numeric would read as a change.
final as (

    select
        days_to_build.date_day,
        coalesce(daily_invocations.invocations, 0) as invocations,
        coalesce(daily_invocations.errored_invocations, 0) as errored_invocations,
        cast(coalesce(daily_invocations.gmv_usd, 0) as numeric(38, 6)) as gmv_usd,
        coalesce(daily_invocations.active_publishers, 0) as active_publishers,
        coalesce(daily_invocations.active_agents, 0) as active_agents,
        coalesce(daily_invocations.active_tenants, 0) as active_tenants,
        coalesce(daily_installs.installs, 0) as installs,
        coalesce(daily_installs.uninstalls, 0) as uninstalls,
        greatest(daily_invocations.last_loaded_at, daily_installs.last_loaded_at)
            as last_loaded_at

    from days_to_build
    left join daily_invocations
        on days_to_build.date_day = daily_invocations.date_day
    left join daily_installs
        on days_to_build.date_day = daily_installs.date_day

)

select * from final
