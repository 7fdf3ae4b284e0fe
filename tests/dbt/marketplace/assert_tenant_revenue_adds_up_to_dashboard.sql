-- Per publisher, `tenant_revenue` over the dashboard window adds up to the dashboard: its
-- revenue to `total_revenue`, its rows to `unique_tenants`, its invocations to
-- `total_invocations`, and revenue / rows to `avg_revenue_per_tenant`. Returns the publishers
-- where any of these disagree.
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
    total_revenue != tenant_revenue_usd
    or unique_tenants != tenants
    or total_invocations != tenant_invocations
    or avg_revenue_per_tenant is distinct from tenant_avg_revenue_usd
