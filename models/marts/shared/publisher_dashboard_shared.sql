{#-
    What a publisher may see of `publisher_dashboard`: its own row only (row-level security on
    `publisher_id`), no tenant ids, each group of metrics null when it was computed over
    fewer than `min_tenants_per_aggregate` tenants (the invocation metrics over the tenants
    that invoked, the response times over those with a completion that reports a duration, the
    satisfaction over those that rated, the active installs over those with an installed
    agent), and every figure coarsened to its step (macros/security.sql).
-#}
{{
    config(
        indexes=[
            {'columns': ['publisher_id'], 'unique': true},
        ],
    )
}}

with

dashboard as (

    select * from {{ ref('publisher_dashboard') }}

),

invocations as (

    select * from {{ ref('int_invocations_enriched') }}

),

ratings as (

    select * from {{ ref('int_ratings_dated') }}

),

agent_installs as (

    select * from {{ ref('agent_installs') }}

),

invocation_tenants as (

    select
        publisher_id,
        count(distinct tenant_id) as invoking_tenants,
        -- the tenants behind the response times: a completion without a duration is not in them
        count(distinct tenant_id) filter (
            where is_success and duration_ms is not null
        ) as completing_tenants

    from invocations
    where
        finished_date between {{ marketplace_window_start_date() }}
        and {{ marketplace_as_of_date() }}
    group by publisher_id

),

rating_tenants as (

    select
        publisher_id,
        count(distinct tenant_id) as rating_tenants

    from ratings
    where
        rated_date between {{ marketplace_window_start_date() }}
        and {{ marketplace_as_of_date() }}
    group by publisher_id

),

install_tenants as (

    select
        publisher_id,
        count(distinct tenant_id) filter (where is_installed) as installed_tenants

    from agent_installs
    group by publisher_id

),

dashboard_with_tenants as (

    select
        dashboard.*,
        coalesce(invocation_tenants.invoking_tenants, 0) as invoking_tenants,
        coalesce(invocation_tenants.completing_tenants, 0) as completing_tenants,
        coalesce(rating_tenants.rating_tenants, 0) as rating_tenants,
        coalesce(install_tenants.installed_tenants, 0) as installed_tenants

    from dashboard
    left join invocation_tenants
        on dashboard.publisher_id = invocation_tenants.publisher_id
    left join rating_tenants
        on dashboard.publisher_id = rating_tenants.publisher_id
    left join install_tenants
        on dashboard.publisher_id = install_tenants.publisher_id

),

final as (

    select
        publisher_id,
        {{ suppress_below_min_tenants(coarsen_count('total_invocations'), 'invoking_tenants') }}
            as total_invocations,
        {{ suppress_below_min_tenants(coarsen_count('completed_invocations'), 'invoking_tenants') }}
            as completed_invocations,
        {{ suppress_below_min_tenants(coarsen_count('errored_invocations'), 'invoking_tenants') }}
            as errored_invocations,
        {{ suppress_below_min_tenants(coarsen_count('unique_tenants'), 'invoking_tenants') }}
            as unique_tenants,
        {{ suppress_below_min_tenants(coarsen_count('active_installs'), 'installed_tenants') }}
            as active_installs,
        {{ suppress_below_min_tenants(coarsen_count('rating_count'), 'rating_tenants') }}
            as rating_count,
        {{ suppress_below_min_tenants(
            coarsen('avg_satisfaction', 'publish_rating_step'), 'rating_tenants'
        ) }} as avg_satisfaction,
        {{ suppress_below_min_tenants(
            coarsen('error_rate', 'publish_rate_step'), 'invoking_tenants'
        ) }} as error_rate,
        {{ suppress_below_min_tenants(
            coarsen('avg_response_time_ms', 'publish_ms_step'), 'completing_tenants'
        ) }} as avg_response_time_ms,
        {{ suppress_below_min_tenants(
            coarsen('p95_response_time_ms', 'publish_ms_step'), 'completing_tenants'
        ) }} as p95_response_time_ms,
        {{ suppress_below_min_tenants(
            coarsen('total_revenue', 'publish_usd_step'), 'invoking_tenants'
        ) }} as total_revenue,
        {{ suppress_below_min_tenants(
            coarsen('avg_revenue_per_tenant', 'publish_usd_step'), 'invoking_tenants'
        ) }} as avg_revenue_per_tenant,
        least(
            invoking_tenants,
            completing_tenants,
            rating_tenants,
            installed_tenants
        ) < {{ var('min_tenants_per_aggregate') | int }} as has_suppressed_metrics,
        window_start_date,
        window_end_date

    from dashboard_with_tenants

)

select * from final
