{#-
    A tenant's unit economics per UTC month, up to the `as_of` month: the revenue its
    invocations brought (`revenue_usd` of int_invocations_enriched, the definition
    tenant_revenue_monthly sums, here over all publishers), what its LLM calls cost, the
    margin, and the cost per invocation and per conversation; the month's LLM budget from
    `seeds/tenant_llm_budgets.csv` and the share of it spent. One row per tenant and month
    with an invocation or an LLM call. Rebuilt whole by its cadence.
-#}
{{
    config(
        indexes=[
            {'columns': ['tenant_id', 'month_start_date'], 'unique': true},
        ],
    )
}}

with

invocations as (

    select * from {{ ref('int_invocations_enriched') }}

),

calls as (

    select * from {{ ref('int_llm_calls_priced') }}

),

budgets as (

    select * from {{ ref('tenant_llm_budgets') }}

),

revenue_by_month as (

    select
        tenant_id,
        date_trunc('month', finished_date)::date as month_start_date,
        count(*) as invocations,
        sum(revenue_usd) as revenue_usd

    from invocations
    where finished_date <= {{ marketplace_as_of_date() }}
    group by 1, 2

),

cost_by_month as (

    select
        tenant_id,
        date_trunc('month', started_date)::date as month_start_date,
        count(*) as llm_calls,
        count(*) filter (where not is_priced) as unpriced_llm_calls,
        count(distinct conversation_id) as conversations,
        coalesce(sum(cost_usd), 0) as llm_cost_usd

    from calls
    where started_date <= {{ marketplace_as_of_date() }}
    group by 1, 2

),

joined as (

    select
        coalesce(revenue_by_month.tenant_id, cost_by_month.tenant_id) as tenant_id,
        coalesce(revenue_by_month.month_start_date, cost_by_month.month_start_date)
            as month_start_date,
        coalesce(revenue_by_month.invocations, 0) as invocations,
        coalesce(cost_by_month.conversations, 0) as conversations,
        coalesce(cost_by_month.llm_calls, 0) as llm_calls,
        coalesce(cost_by_month.unpriced_llm_calls, 0) as unpriced_llm_calls,
        coalesce(revenue_by_month.revenue_usd, 0) as revenue_usd,
        coalesce(cost_by_month.llm_cost_usd, 0) as llm_cost_usd

    from revenue_by_month
    full outer join cost_by_month
        on
            revenue_by_month.tenant_id = cost_by_month.tenant_id
            and revenue_by_month.month_start_date = cost_by_month.month_start_date

),

final as (

    select
        -- ids
        joined.tenant_id,

        -- numerics
        joined.invocations,
        joined.conversations,
        joined.llm_calls,
        joined.unpriced_llm_calls,
        joined.revenue_usd::numeric(38, 6) as revenue_usd,
        joined.llm_cost_usd::numeric(38, 6) as llm_cost_usd,
        -- the difference of the two stored (rounded) amounts, so that a reader's
        -- revenue_usd - llm_cost_usd is exactly the margin shown
        joined.revenue_usd::numeric(38, 6) - joined.llm_cost_usd::numeric(38, 6) as margin_usd,
        {{ margin_rate('joined.revenue_usd', 'joined.llm_cost_usd') }}::numeric(38, 8)
            as margin_rate,
        {{ cost_per('joined.llm_cost_usd', 'joined.invocations') }}::numeric(38, 6)
            as cost_per_invocation_usd,
        {{ cost_per('joined.llm_cost_usd', 'joined.conversations') }}::numeric(38, 6)
            as cost_per_conversation_usd,
        budgets.monthly_budget_usd::numeric(38, 6) as llm_budget_usd,
        {{ cost_per('joined.llm_cost_usd', 'budgets.monthly_budget_usd') }}::numeric(38, 8)
            as llm_budget_used_rate,

        -- dates
        joined.month_start_date

    from joined
    left join budgets
        on joined.tenant_id = budgets.tenant_id

)

select * from final
