-- Per publisher, `tenant_revenue` over the dashboard window adds up to the dashboard: its
-- rows to `unique_tenants` and its invocations to `total_invocations` exactly; its revenue to
-- `total_revenue` and revenue / rows to `avg_revenue_per_tenant` within the stored scale's
-- rounding (half a micro-dollar per row). Returns the publishers where any of these disagree.
with

publisher_dashboard as (

    select * from {{ ref('publisher_dashboard') }}

),

tenant_revenue as (

    select * from {{ ref('tenant_revenue') }}

),

tenant_totals as (

    select
        publisher_id,
        count(*) as tenants,
        sum(invocations) as invocations,
        sum(revenue_usd) as revenue_usd

    from tenant_revenue
    group by publisher_id

),

compared as (

    select
        publisher_dashboard.publisher_id,
        publisher_dashboard.total_revenue,
        publisher_dashboard.unique_tenants,
        publisher_dashboard.total_invocations,
        publisher_dashboard.avg_revenue_per_tenant,
        coalesce(tenant_totals.revenue_usd, 0) as tenant_revenue_usd,
        coalesce(tenant_totals.tenants, 0) as tenants,
        coalesce(tenant_totals.invocations, 0) as tenant_invocations,
        tenant_totals.revenue_usd / tenant_totals.tenants as tenant_avg_revenue_usd

    from publisher_dashboard
    left join tenant_totals
        on publisher_dashboard.publisher_id = tenant_totals.publisher_id

)

select * from compared
where
    {{ usd_differs_beyond_rounding('total_revenue', 'tenant_revenue_usd', 'tenants') }}
    or unique_tenants != tenants
    or total_invocations != tenant_invocations
    or (avg_revenue_per_tenant is null) != (tenant_avg_revenue_usd is null)
    or abs(avg_revenue_per_tenant - tenant_avg_revenue_usd) > 0.000001
