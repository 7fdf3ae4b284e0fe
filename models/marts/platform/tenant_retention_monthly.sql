{{
    config(
        indexes=[
            {'columns': ['cohort_month_start_date', 'activity_month_start_date'], 'unique': true},
        ],
    )
}}

with

invocations as (

    select * from {{ ref('int_invocations_enriched') }}
    where finished_date <= {{ marketplace_as_of_date() }}

),

tenant_months as (

    -- the months in which a tenant invoked any agent
    select distinct
        tenant_id,
        cast(date_trunc('month', finished_date) as date) as activity_month_start_date

    from invocations

),

cohorts as (

    -- a tenant's cohort is the month of its first invocation
    select
        tenant_id,
        min(activity_month_start_date) as cohort_month_start_date

    from tenant_months
    group by tenant_id

),

cohort_sizes as (

    select
        cohort_month_start_date,
        count(*) as cohort_tenants

    from cohorts
    group by cohort_month_start_date

),

cohort_months as (

    -- every month from the cohort's first to the as-of month, months without activity included
    select
        cohort_sizes.cohort_month_start_date,
        cohort_sizes.cohort_tenants,
        cast(months.month_start as date) as activity_month_start_date

    from cohort_sizes
    {{
        cross_join_date_series(
            'cohort_sizes.cohort_month_start_date',
            "cast(date_trunc('month', " ~ marketplace_as_of_date() ~ ") as date)",
            'month', 'months', 'month_start'
        )
    }}

),

retained as (

    select
        cohorts.cohort_month_start_date,
        tenant_months.activity_month_start_date,
        count(*) as retained_tenants

    from tenant_months
    inner join cohorts
        on tenant_months.tenant_id = cohorts.tenant_id
    group by cohorts.cohort_month_start_date, tenant_months.activity_month_start_date

),

final as (

    select
        cohort_months.cohort_month_start_date,
        cohort_months.activity_month_start_date,
        cohort_months.cohort_tenants,
        {{
            months_between_month_starts(
                'cohort_months.activity_month_start_date',
                'cohort_months.cohort_month_start_date'
            )
        }} as months_since_cohort,
        coalesce(retained.retained_tenants, 0) as retained_tenants,
        cast(coalesce(retained.retained_tenants, 0) as numeric)
        / cohort_months.cohort_tenants as retention_rate

    from cohort_months
    left join retained
        on
            cohort_months.cohort_month_start_date = retained.cohort_month_start_date
            and cohort_months.activity_month_start_date = retained.activity_month_start_date

)

select * from final
