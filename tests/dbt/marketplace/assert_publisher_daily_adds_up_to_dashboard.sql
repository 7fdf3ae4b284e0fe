-- Per publisher, the `publisher_daily` rows inside the dashboard window add up to
-- `publisher_dashboard`: invocations, completions and errors exactly; revenue within the
-- stored scale's rounding (half a micro-dollar per daily row and for the dashboard); the
-- rating-weighted daily satisfaction and the daily mean response time, weighted by the day's
-- completions that report a duration, to the window's averages (within 1e-6: each side is
-- stored at 6 decimals). Returns the publishers where they disagree.
with

publisher_dashboard as (

    select * from {{ ref('publisher_dashboard') }}

),

publisher_daily as (

    select * from {{ ref('publisher_daily') }}
    where is_in_dashboard_window

),

invocations as (

    select * from {{ ref('int_invocations_enriched') }}

),

-- a completion without a duration is left out of the mean: weigh each day by the others
timed_completions as (

    select
        publisher_id,
        finished_date as date_day,
        count(*) as timed_completions

    from invocations
    where is_success and duration_ms is not null
    group by publisher_id, finished_date

),

timed_days as (

    select
        publisher_daily.*,
        coalesce(timed_completions.timed_completions, 0) as timed_completions

    from publisher_daily
    left join timed_completions
        on
            publisher_daily.publisher_id = timed_completions.publisher_id
            and publisher_daily.date_day = timed_completions.date_day

),

daily_totals as (

    select
        publisher_id,
        sum(invocations) as invocations,
        sum(completed_invocations) as completed_invocations,
        sum(errored_invocations) as errored_invocations,
        sum(revenue_usd) as revenue_usd,
        count(*) as daily_rows,
        sum(rating_count) as rating_count,
        sum(rating_sum) / nullif(sum(rating_count), 0) as avg_satisfaction,
        sum(avg_response_time_ms * timed_completions)
        / nullif(sum(timed_completions), 0) as avg_response_time_ms

    from timed_days
    group by publisher_id

),

compared as (

    select
        publisher_dashboard.publisher_id,
        publisher_dashboard.total_invocations,
        publisher_dashboard.completed_invocations,
        publisher_dashboard.errored_invocations,
        publisher_dashboard.total_revenue,
        publisher_dashboard.rating_count,
        publisher_dashboard.avg_satisfaction,
        publisher_dashboard.avg_response_time_ms,
        daily_totals.avg_satisfaction as daily_avg_satisfaction,
        daily_totals.avg_response_time_ms as daily_avg_response_time_ms,
        coalesce(daily_totals.invocations, 0) as daily_invocations,
        coalesce(daily_totals.completed_invocations, 0) as daily_completed_invocations,
        coalesce(daily_totals.errored_invocations, 0) as daily_errored_invocations,
        coalesce(daily_totals.revenue_usd, 0) as daily_revenue_usd,
        coalesce(daily_totals.daily_rows, 0) as daily_rows,
        coalesce(daily_totals.rating_count, 0) as daily_rating_count

    from publisher_dashboard
    left join daily_totals
        on publisher_dashboard.publisher_id = daily_totals.publisher_id

)

select * from compared
where
    total_invocations != daily_invocations
    or completed_invocations != daily_completed_invocations
    or errored_invocations != daily_errored_invocations
    or {{ usd_differs_beyond_rounding('total_revenue', 'daily_revenue_usd', 'daily_rows') }}
    or rating_count != daily_rating_count
    or (avg_satisfaction is null) != (daily_avg_satisfaction is null)
    or abs(avg_satisfaction - daily_avg_satisfaction) > 1e-6
    or (avg_response_time_ms is null) != (daily_avg_response_time_ms is null)
    or abs(avg_response_time_ms - daily_avg_response_time_ms) > 1e-6
