{#-
    What a publisher may see of `publisher_daily`: its own days only (row-level security on
    `publisher_id`), and each group of a day's metrics null when that day's group has fewer
    than `min_tenants_per_aggregate` tenants (invocations: tenants that invoked; response
    times: tenants with a completion that reports a duration; ratings: tenants that rated).
-#}
{{
    config(
        indexes=[
            {'columns': ['publisher_id', 'date_day'], 'unique': true},
        ],
    )
}}

with

daily as (

    select * from {{ ref('publisher_daily') }}

),

invocations as (

    select * from {{ ref('int_invocations_enriched') }}

),

events as (

    select * from {{ ref('stg_marketplace__events') }}

),

completion_tenants as (

    select
        publisher_id,
        finished_date as date_day,
        count(distinct tenant_id) as completing_tenants

    from invocations
    -- the tenants behind the response times: a completion without a duration is not in them
    where is_success and duration_ms is not null
    group by publisher_id, finished_date

),

rating_tenants as (

    select
        publisher_id,
        {{ utc_date('occurred_at') }} as date_day,
        count(distinct tenant_id) as rating_tenants

    from events
    where event_type = 'user_feedback'
    group by publisher_id, {{ utc_date('occurred_at') }}

),

daily_with_tenants as (

    select
        daily.*,
        coalesce(completion_tenants.completing_tenants, 0) as completing_tenants,
        coalesce(rating_tenants.rating_tenants, 0) as rating_tenants

    from daily
    left join completion_tenants
        on
            daily.publisher_id = completion_tenants.publisher_id
            and daily.date_day = completion_tenants.date_day
    left join rating_tenants
        on
            daily.publisher_id = rating_tenants.publisher_id
            and daily.date_day = rating_tenants.date_day

),

final as (

    select
        publisher_id,
        {{ suppress_below_min_tenants('invocations', 'active_tenants') }} as invocations,
        {{ suppress_below_min_tenants('completed_invocations', 'active_tenants') }}
            as completed_invocations,
        {{ suppress_below_min_tenants('errored_invocations', 'active_tenants') }}
            as errored_invocations,
        {{ suppress_below_min_tenants('error_rate', 'active_tenants') }} as error_rate,
        {{ suppress_below_min_tenants('active_tenants', 'active_tenants') }} as active_tenants,
        {{ suppress_below_min_tenants('revenue_usd', 'active_tenants') }} as revenue_usd,
        {{ suppress_below_min_tenants('avg_response_time_ms', 'completing_tenants') }}
            as avg_response_time_ms,
        {{ suppress_below_min_tenants('p50_response_time_ms', 'completing_tenants') }}
            as p50_response_time_ms,
        {{ suppress_below_min_tenants('p90_response_time_ms', 'completing_tenants') }}
            as p90_response_time_ms,
        {{ suppress_below_min_tenants('p95_response_time_ms', 'completing_tenants') }}
            as p95_response_time_ms,
        {{ suppress_below_min_tenants('p99_response_time_ms', 'completing_tenants') }}
            as p99_response_time_ms,
        {{ suppress_below_min_tenants('rating_count', 'rating_tenants') }} as rating_count,
        {{ suppress_below_min_tenants('rating_sum', 'rating_tenants') }} as rating_sum,
        {{ suppress_below_min_tenants('avg_satisfaction', 'rating_tenants') }}
            as avg_satisfaction,
        least(active_tenants, completing_tenants, rating_tenants)
        < {{ var('min_tenants_per_aggregate', 5) | int }} as has_suppressed_metrics,
        is_in_dashboard_window,
        date_day

    from daily_with_tenants

)

select * from final
