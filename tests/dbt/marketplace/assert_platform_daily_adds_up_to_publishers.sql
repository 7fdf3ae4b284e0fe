-- The operator's view agrees with the publishers' views: on every day, `platform_daily`'s
-- invocations are the sum of `publisher_daily`'s and its GMV too, within the stored scale's
-- rounding (half a micro-dollar per row), and its active publishers are the publishers with
-- an invocation that day. Returns the days where they disagree.
with

platform_daily as (

    select * from {{ ref('platform_daily') }}

),

publisher_daily as (

    select * from {{ ref('publisher_daily') }}

),

publisher_totals as (

    select
        date_day,
        sum(revenue_usd) as revenue_usd,
        sum(invocations) as invocations,
        count(*) as publisher_rows,
        count(*) filter (where invocations > 0) as active_publishers

    from publisher_daily
    group by date_day

),

compared as (

    select
        platform_daily.date_day,
        platform_daily.gmv_usd,
        platform_daily.invocations,
        platform_daily.active_publishers,
        coalesce(publisher_totals.revenue_usd, 0) as publisher_revenue_usd,
        coalesce(publisher_totals.invocations, 0) as publisher_invocations,
        coalesce(publisher_totals.publisher_rows, 0) as publisher_rows,
        coalesce(publisher_totals.active_publishers, 0) as publisher_active_publishers

    from platform_daily
    left join publisher_totals
        on platform_daily.date_day = publisher_totals.date_day

)

select * from compared
where
    {{ usd_differs_beyond_rounding('gmv_usd', 'publisher_revenue_usd', 'publisher_rows') }}
    or invocations != publisher_invocations
    or active_publishers != publisher_active_publishers
