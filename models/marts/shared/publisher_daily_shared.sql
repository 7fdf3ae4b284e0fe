{#-
    What a publisher may see of `publisher_daily`: its own days only (row-level security on
    `publisher_id`), with the three protections of macros/security.sql:

    - threshold: each group of a day's metrics null when that day's group has fewer than
      `min_tenants_per_aggregate` tenants (invocations and revenue: tenants that invoked;
      response times: tenants with a completion that reports a duration; ratings: tenants
      that rated);
    - complementary suppression: when the in-window days a group hides by the threshold
      hold, together, between one and `min_tenants_per_aggregate - 1` distinct tenants, the
      group is null on every in-window day of the publisher, so that the window total in
      `publisher_dashboard_shared` minus the visible days cannot single them out;
    - coarsening: counts and sums rounded to a step, rates, averages and percentiles too;
    - existence: a day on which no group is published (fewer than `min_tenants_per_aggregate`
      tenants in each, or hidden by complementary suppression) is not a row at all, like a
      day without activity, so the rows never say on which days a few tenants were active.

    Which column is published how: its mapping in macros/shared_marts.sql.
-#}
{{
    config(
        indexes=[
            {'columns': ['publisher_id', 'date_day'], 'unique': true},
        ],
    )
}}

{%- set min_tenants = var('min_tenants_per_aggregate') | int %}

with

daily as (

    select * from {{ ref('publisher_daily') }}

),

invocations as (

    select * from {{ ref('int_invocations_enriched') }}

),

dated_ratings as (

    select * from {{ ref('int_ratings_dated') }}

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

ratings as (

    select
        publisher_id,
        tenant_id,
        rated_date as date_day

    from dated_ratings

),

rating_tenants as (

    select
        publisher_id,
        date_day,
        count(distinct tenant_id) as rating_tenants

    from ratings
    group by publisher_id, date_day

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

thin_days as (

    -- in-window days on which a group has some tenants, but too few to publish
    select
        publisher_id,
        date_day,
        active_tenants between 1 and {{ min_tenants - 1 }} as is_thin_invocations,
        completing_tenants between 1 and {{ min_tenants - 1 }} as is_thin_completions,
        rating_tenants between 1 and {{ min_tenants - 1 }} as is_thin_ratings

    from daily_with_tenants
    where is_in_dashboard_window

),

thin_invocation_tenants as (

    select
        thin_days.publisher_id,
        count(distinct invocations.tenant_id) filter (
            where thin_days.is_thin_invocations
        ) as thin_invoking_tenants,
        count(distinct invocations.tenant_id) filter (
            where thin_days.is_thin_completions and invocations.is_success
        ) as thin_completing_tenants

    from thin_days
    inner join invocations
        on
            thin_days.publisher_id = invocations.publisher_id
            and thin_days.date_day = invocations.finished_date
    where thin_days.is_thin_invocations or thin_days.is_thin_completions
    group by thin_days.publisher_id

),

thin_rating_tenants as (

    select
        thin_days.publisher_id,
        count(distinct ratings.tenant_id) as thin_rating_tenants

    from thin_days
    inner join ratings
        on
            thin_days.publisher_id = ratings.publisher_id
            and thin_days.date_day = ratings.date_day
    where thin_days.is_thin_ratings
    group by thin_days.publisher_id

),

published as (

    -- which groups of which days a publisher may see (the `when` of the mapping)
    select
        daily_with_tenants.*,
        daily_with_tenants.active_tenants >= {{ min_tenants }}
        and not (
            daily_with_tenants.is_in_dashboard_window
            and coalesce(thin_invocation_tenants.thin_invoking_tenants, 0)
            between 1 and {{ min_tenants - 1 }}
        ) as is_invocations_published,
        daily_with_tenants.completing_tenants >= {{ min_tenants }}
        and not (
            daily_with_tenants.is_in_dashboard_window
            and coalesce(thin_invocation_tenants.thin_completing_tenants, 0)
            between 1 and {{ min_tenants - 1 }}
        ) as is_completions_published,
        daily_with_tenants.rating_tenants >= {{ min_tenants }}
        and not (
            daily_with_tenants.is_in_dashboard_window
            and coalesce(thin_rating_tenants.thin_rating_tenants, 0)
            between 1 and {{ min_tenants - 1 }}
        ) as is_ratings_published

    from daily_with_tenants
    left join thin_invocation_tenants
        on daily_with_tenants.publisher_id = thin_invocation_tenants.publisher_id
    left join thin_rating_tenants
        on daily_with_tenants.publisher_id = thin_rating_tenants.publisher_id

),

published_days as (

    -- a day on which no group is published is not a row
    select
        *,
        not is_invocations_published
        or not is_completions_published
        or not is_ratings_published as has_suppressed_metrics

    from published
    where is_invocations_published or is_completions_published or is_ratings_published

),

final as (

    -- the columns of its mapping (macros/shared_marts.sql)
    select
        {{ shared_mart_columns('publisher_daily_shared') }}

    from published_days

)

select * from final
