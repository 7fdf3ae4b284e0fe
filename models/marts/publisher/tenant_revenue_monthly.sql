{{
    config(
        indexes=[
            {'columns': ['tenant_id', 'publisher_id', 'month_start_date'], 'unique': true},
            {'columns': ['tenant_id', 'month_start_date']},
        ],
    )
}}

with

invocations as (

    select * from {{ ref('int_invocations_enriched') }}

),

dated_invocations as (

    select
        *,
        cast(date_trunc('month', finished_date) as date) as month_start_date

    from invocations
    where finished_date <= {{ marketplace_as_of_date() }}

),

final as (

    select
        publisher_id,
        tenant_id,
        month_start_date,
        count(*) as invocations,
        count(*) filter (where is_success) as completed_invocations,
        sum(revenue_usd) as revenue_usd,
        {{ revenue_per_invocation('sum(revenue_usd)', 'count(*)') }} as revenue_per_invocation_usd

    from dated_invocations
    group by publisher_id, tenant_id, month_start_date

)

select * from final
