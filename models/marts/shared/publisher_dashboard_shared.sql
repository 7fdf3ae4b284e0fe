{#-
    What a publisher may see of `publisher_dashboard`: its own row only (row-level security on
    `publisher_id`), no tenant ids, each group of metrics null when it was computed over
    fewer than `min_tenants_per_aggregate` tenants (the invocation metrics over the tenants
    that invoked, the response times over those with a completion that reports a duration, the
    satisfaction over those that rated, the active installs over those with an installed
    agent), and every figure coarsened to its step (macros/security.sql). Which column is
    published how: its mapping in macros/shared_marts.sql.
-#}
{{
    config(
        indexes=[
            {'columns': ['publisher_id'], 'unique': true},
        ],
    )
}}

{%- set min_tenants = var('min_tenants_per_aggregate') | int %}

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
    where {{ in_dashboard_window('finished_date') }}
    group by publisher_id

),

rating_tenants as (

    select
        publisher_id,
        count(distinct tenant_id) as rating_tenants

    from ratings
    where {{ in_dashboard_window('rated_date') }}
    group by publisher_id

),

install_tenants as (

    select
        publisher_id,
        count(distinct tenant_id) filter (where is_installed) as installed_tenants

    from agent_installs
    group by publisher_id

),

warehouse_freshness as (

    -- how fresh the data is, platform-wide: a publisher's own newest load would tell when a
    -- single tenant last invoked, so publisher_dashboard's rows' loads are not published
    select max(loaded_at) as warehouse_last_loaded_at
    from invocations

),

dashboard_with_tenants as (

    select
        dashboard.*,
        warehouse_freshness.warehouse_last_loaded_at,
        coalesce(invocation_tenants.invoking_tenants, 0) as invoking_tenants,
        coalesce(invocation_tenants.completing_tenants, 0) as completing_tenants,
        coalesce(rating_tenants.rating_tenants, 0) as rating_tenants,
        coalesce(install_tenants.installed_tenants, 0) as installed_tenants

    from dashboard
    cross join warehouse_freshness
    left join invocation_tenants
        on dashboard.publisher_id = invocation_tenants.publisher_id
    left join rating_tenants
        on dashboard.publisher_id = rating_tenants.publisher_id
    left join install_tenants
        on dashboard.publisher_id = install_tenants.publisher_id

),

published as (

    -- which groups of metrics a publisher may see (the `when` of the mapping)
    select
        *,
        invoking_tenants >= {{ min_tenants }} as is_invocations_published,
        completing_tenants >= {{ min_tenants }} as is_completions_published,
        rating_tenants >= {{ min_tenants }} as is_ratings_published,
        installed_tenants >= {{ min_tenants }} as is_installs_published,
        least(
            invoking_tenants,
            completing_tenants,
            rating_tenants,
            installed_tenants
        ) < {{ min_tenants }} as has_suppressed_metrics

    from dashboard_with_tenants

),

final as (

    -- the columns of its mapping (macros/shared_marts.sql)
    select
        {{ shared_mart_columns('publisher_dashboard_shared') }}

    from published

)

select * from final
