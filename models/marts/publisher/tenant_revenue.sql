{{
    config(
        indexes=[
            {'columns': ['tenant_id', 'publisher_id'], 'unique': true},
        ],
    )
}}

with

invocations as (

    select * from {{ ref('int_invocations_enriched') }}

),

window_invocations as (

    select * from invocations
    where {{ in_dashboard_window('finished_date') }}

),

final as (

    select
        publisher_id,
        tenant_id,
        count(*) as invocations,
        count(*) filter (where is_success) as completed_invocations,
        sum(revenue_usd) as revenue_usd,
        {{ revenue_per_invocation('sum(revenue_usd)', 'count(*)') }} as revenue_per_invocation_usd,
        {{ marketplace_window_start_date() }} as window_start_date,
        {{ marketplace_as_of_date() }} as window_end_date

    from window_invocations
    group by publisher_id, tenant_id

)

select * from final
