{{
    config(
        indexes=[
            {'columns': ['publisher_id', 'date_day'], 'unique': true},
            {'columns': ['date_day']},
        ],
    )
}}

with

invocations as (

    select * from {{ ref('int_invocations_enriched') }}
    where finished_date <= {{ marketplace_as_of_date() }}

),

ratings as (

    select * from {{ ref('int_ratings_dated') }}
    where rated_date <= {{ marketplace_as_of_date() }}

),

active_days as (

    select
        publisher_id,
        finished_date as active_date
    from invocations

    union all

    select
        publisher_id,
        rated_date as active_date
    from ratings

),

first_active_days as (

    select
        publisher_id,
        min(active_date) as first_active_date

    from active_days
    group by publisher_id

),

spine as (

    -- every day from the publisher's first activity to the as-of date, idle days included
    select
        first_active_days.publisher_id,
        cast(calendar.day_start as date) as date_day

    from first_active_days
    {{
        cross_join_date_series(
            'first_active_days.first_active_date',
            marketplace_as_of_date(),
            'day', 'calendar', 'day_start'
        )
    }}

),

daily_invocations as (

    select
        publisher_id,
        finished_date as date_day,
        count(*) as invocations,
        count(*) filter (where is_success) as completed_invocations,
        count(*) filter (where not is_success) as errored_invocations,
        count(distinct tenant_id) as active_tenants,
        sum(revenue_usd) as revenue_usd,
        {{ response_time_ms() }} as avg_response_time_ms,
        {{ response_time_ms(0.50) }} as p50_response_time_ms,
        {{ response_time_ms(0.90) }} as p90_response_time_ms,
        {{ response_time_ms(0.95) }} as p95_response_time_ms,
        {{ response_time_ms(0.99) }} as p99_response_time_ms

    from invocations
    group by publisher_id, finished_date

),

daily_ratings as (

    select
        publisher_id,
        rated_date as date_day,
        count(*) as rating_count,
        sum(rating) as rating_sum

    from ratings
    group by publisher_id, rated_date

),

final as (

    select
        spine.publisher_id,
        coalesce(daily_invocations.invocations, 0) as invocations,
        coalesce(daily_invocations.completed_invocations, 0) as completed_invocations,
        coalesce(daily_invocations.errored_invocations, 0) as errored_invocations,
        {{ error_rate('daily_invocations.errored_invocations', 'daily_invocations.invocations') }}
            as error_rate,
        coalesce(daily_invocations.active_tenants, 0) as active_tenants,
        coalesce(daily_invocations.revenue_usd, 0) as revenue_usd,
        daily_invocations.avg_response_time_ms,
        daily_invocations.p50_response_time_ms,
        daily_invocations.p90_response_time_ms,
        daily_invocations.p95_response_time_ms,
        daily_invocations.p99_response_time_ms,
        coalesce(daily_ratings.rating_count, 0) as rating_count,
        coalesce(daily_ratings.rating_sum, 0) as rating_sum,
        {{ avg_satisfaction('daily_ratings.rating_sum', 'daily_ratings.rating_count') }}
            as avg_satisfaction,
        spine.date_day >= {{ marketplace_window_start_date() }} as is_in_dashboard_window,
        spine.date_day

    from spine
    left join daily_invocations
        on
            spine.publisher_id = daily_invocations.publisher_id
            and spine.date_day = daily_invocations.date_day
    left join daily_ratings
        on
            spine.publisher_id = daily_ratings.publisher_id
            and spine.date_day = daily_ratings.date_day

)

select * from final
