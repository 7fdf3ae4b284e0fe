-- Operator: LLM calls and cost per tenant, agent, model and day (marts.llm_cost_daily).
select
    tenant_id,
    agent_name,
    model_name,
    calls,
    errored_calls,
    unpriced_calls,
    total_tokens,
    cost_usd,
    error_rate,
    p95_duration_ms,
    date_day,
    last_loaded_at
from marts.llm_cost_daily
order by date_day, tenant_id, agent_name, model_name
