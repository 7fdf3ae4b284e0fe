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

invocations as (

    select * from {{ ref('int_invocations_enriched') }}

),

ratings as (

    select * from {{ ref('int_ratings_dated') }}

),

agent_installs as (

    select * from {{ ref('agent_installs') }}

),

tenant_revenue as (

    select * from {{ ref('tenant_revenue') }}

),

publishers as (

    -- every publisher with any event up to the as-of date gets a row, idle ones included
    select publisher_id
    from marketplace_publishers
    where first_event_date <= {{ marketplace_as_of_date() }}

),

window_invocations as (

    select * from invocations
    where
        finished_date between {{ marketplace_window_start_date() }}
        and {{ marketplace_as_of_date() }}

),

invocation_metrics as (

    select
        publisher_id,
        count(*) as total_invocations,
        count(*) filter (where is_success) as completed_invocations,
        count(*) filter (where not is_success) as errored_invocations,
        count(distinct tenant_id) as unique_tenants,
        sum(revenue_usd) as total_revenue,
        {{ response_time_ms() }} as avg_response_time_ms,
        {{ response_time_ms(0.95) }} as p95_response_time_ms

    from window_invocations
    group by publisher_id

),

rating_metrics as (

    select
        publisher_id,
        count(*) as rating_count,
        sum(rating) as rating_sum

    from ratings
    where
        rated_date between {{ marketplace_window_start_date() }}
        and {{ marketplace_as_of_date() }}
    group by publisher_id

),

install_metrics as (

    select
        publisher_id,
        count(*) filter (where is_installed) as active_installs

    from agent_installs
    group by publisher_id

),

tenant_metrics as (

    select
        publisher_id,
        sum(revenue_usd) / count(*) as avg_revenue_per_tenant

    from tenant_revenue
    group by publisher_id

),

final as (

    select
        publishers.publisher_id,
        coalesce(invocation_metrics.total_invocations, 0) as total_invocations,
        coalesce(invocation_metrics.completed_invocations, 0) as completed_invocations,
        coalesce(invocation_metrics.errored_invocations, 0) as errored_invocations,
        coalesce(invocation_metrics.unique_tenants, 0) as unique_tenants,
        coalesce(install_metrics.active_installs, 0) as active_installs,
        coalesce(rating_metrics.rating_count, 0) as rating_count,
        {{ avg_satisfaction('rating_metrics.rating_sum', 'rating_metrics.rating_count') }}
            as avg_satisfaction,
        {{
            error_rate(
                'invocation_metrics.errored_invocations',
                'invocation_metrics.total_invocations'
            )
        }} as error_rate,
        invocation_metrics.avg_response_time_ms,
        invocation_metrics.p95_response_time_ms,
        coalesce(invocation_metrics.total_revenue, 0) as total_revenue,
        tenant_metrics.avg_revenue_per_tenant,
        {{ marketplace_window_start_date() }} as window_start_date,
        {{ marketplace_as_of_date() }} as window_end_date

    from publishers
    left join invocation_metrics
        on publishers.publisher_id = invocation_metrics.publisher_id
    left join rating_metrics
        on publishers.publisher_id = rating_metrics.publisher_id
    left join install_metrics
        on publishers.publisher_id = install_metrics.publisher_id
    left join tenant_metrics
        on publishers.publisher_id = tenant_metrics.publisher_id

)

select * from final
