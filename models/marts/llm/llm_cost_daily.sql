{#-
    LLM cost per tenant, agent, model and UTC day, up to the `as_of` date: calls, tokens by
    kind, cost, error rate and call durations. Rebuilt whole by its cadence, like
    tenant_revenue_monthly.
-#}
{{
    config(
        indexes=[
            {'columns': ['tenant_id', 'date_day']},
            {'columns': ['tenant_id', 'model_name']},
        ],
    )
}}

with

calls as (

    select * from {{ ref('int_llm_calls_priced') }}

),

dated_calls as (

    select * from calls
    where started_date <= {{ marketplace_as_of_date() }}

),

final as (

    select
        -- ids
        tenant_id,

        -- strings
        agent_name,
        model_name,

        -- numerics
        count(*) as calls,
        count(*) filter (where is_error) as errored_calls,
        count(*) filter (where not is_priced) as unpriced_calls,
        coalesce(sum(input_tokens), 0)::bigint as input_tokens,
        coalesce(sum(output_tokens), 0)::bigint as output_tokens,
        coalesce(sum(cache_read_tokens), 0)::bigint as cache_read_tokens,
        coalesce(sum(cache_write_tokens), 0)::bigint as cache_write_tokens,
        coalesce(sum(reasoning_tokens), 0)::bigint as reasoning_tokens,
        coalesce(sum(total_tokens), 0)::bigint as total_tokens,
        coalesce(sum(cost_usd), 0)::numeric(38, 6) as cost_usd,
        {{ error_rate('count(*) filter (where is_error)', 'count(*)') }}::numeric(38, 8)
            as error_rate,
        {{ llm_call_duration_ms(0.5) }}::numeric(38, 6) as p50_duration_ms,
        {{ llm_call_duration_ms(0.95) }}::numeric(38, 6) as p95_duration_ms,

        -- dates
        started_date as date_day,

        -- timestamps
        max(loaded_at) as last_loaded_at

    from dated_calls
    group by tenant_id, agent_name, model_name, started_date

)

select * from final
