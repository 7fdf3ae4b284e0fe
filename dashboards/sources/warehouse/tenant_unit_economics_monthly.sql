-- Operator: revenue, LLM cost, margin and budget burn per tenant and month
-- (marts.tenant_unit_economics_monthly).
select
    tenant_id,
    invocations,
    conversations,
    llm_calls,
    unpriced_llm_calls,
    revenue_usd,
    llm_cost_usd,
    margin_usd,
    margin_rate,
    cost_per_invocation_usd,
    llm_budget_usd,
    llm_budget_used_rate,
    month_start_date
from marts.tenant_unit_economics_monthly
order by month_start_date, tenant_id
