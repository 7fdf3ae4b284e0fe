{{
    config(
        indexes=[
            {'columns': ['publisher_id'], 'unique': true},
        ],
    )
}}

with

marketplace_publishers as (

    select * from {{ ref('int_marketplace_publishers') }}

),

publisher_days as (

    select * from {{ ref('publisher_daily') }}

),

invocations as (

    select * from {{ ref('int_invocations_enriched') }}

),

agent_installs as (

    select * from {{ ref('agent_installs') }}

),

publishers as (

    -- every publisher with any event up to the as-of date gets a row, idle ones included
    select publisher_id
    from marketplace_publishers
    where first_event_date <= {{ marketplace_as_of_date() }}

),

window_days as (

    select * from publisher_days
    where is_in_dashboard_window

),

daily_metrics as (

    -- the additive metrics: sums of the incremental daily base's days in the window
    select
        publisher_id,
        sum(invocations)::bigint as total_invocations,
        sum(completed_invocations)::bigint as completed_invocations,
        sum(errored_invocations)::bigint as errored_invocations,
        sum(revenue_usd) as total_revenue,
        sum(rating_count)::bigint as rating_count,
        sum(rating_sum) as rating_sum

    from window_days
    group by publisher_id

),

window_invocation_metrics as (

    -- what days cannot add up to (distinct tenants, window percentiles): the window's
    -- invocations, read through the (publisher, date) index
    select
        publisher_id,
        count(distinct tenant_id) as unique_tenants,
        {{ response_time_ms() }} as avg_response_time_ms,
        {{ response_time_ms(0.95) }} as p95_response_time_ms

    from invocations
    where {{ in_dashboard_window('finished_date') }}
    group by publisher_id

),

install_metrics as (

    select
        publisher_id,
        count(*) filter (where is_installed) as active_installs

    from agent_installs
    group by publisher_id

),

final as (

    select
        publishers.publisher_id,
        coalesce(daily_metrics.total_invocations, 0) as total_invocations,
        coalesce(daily_metrics.completed_invocations, 0) as completed_invocations,
        coalesce(daily_metrics.errored_invocations, 0) as errored_invocations,
        coalesce(window_invocation_metrics.unique_tenants, 0) as unique_tenants,
        coalesce(install_metrics.active_installs, 0) as active_installs,
        coalesce(daily_metrics.rating_count, 0) as rating_count,
        {{ avg_satisfaction('daily_metrics.rating_sum', 'daily_metrics.rating_count') }}
            as avg_satisfaction,
        {{
            error_rate(
                'daily_metrics.errored_invocations',
                'daily_metrics.total_invocations'
            )
        }} as error_rate,
        window_invocation_metrics.avg_response_time_ms,
        window_invocation_metrics.p95_response_time_ms,
        coalesce(daily_metrics.total_revenue, 0) as total_revenue,
        {{
            avg_revenue_per_tenant(
                'daily_metrics.total_revenue',
                'window_invocation_metrics.unique_tenants'
            )
        }} as avg_revenue_per_tenant,
        {{ marketplace_window_start_date() }} as window_start_date,
        {{ marketplace_as_of_date() }} as window_end_date

    from publishers
    left join daily_metrics
        on publishers.publisher_id = daily_metrics.publisher_id
    left join window_invocation_metrics
        on publishers.publisher_id = window_invocation_metrics.publisher_id
    left join install_metrics
        on publishers.publisher_id = install_metrics.publisher_id

)

select * from final
