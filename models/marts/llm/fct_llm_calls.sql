{#-
    One row per LLM call read from OpenTelemetry spans (any dialect; agent and tool spans are
    not calls), with its tokens by kind and its cost: the span's own cost when it carries one,
    else tokens times the seed price (int_llm_calls_priced), else null (`is_priced` false).
    A tenant reads only its own rows (row-level security on `tenant_id`).

    Incremental like fct_invocations: the calls loaded since the high-water mark minus
    `lookback_hours` that are not here yet; what a purge deleted is dropped by the pre-hook.
-#}
{{
    incremental_model(
        retention=retention_by_rows(
            time_column='started_at',
            key=['trace_id', 'span_id'],
            kept_in="ref('int_llm_calls_priced')",
        ),
        indexes=[
            {'columns': ['tenant_id', 'trace_id', 'span_id'], 'unique': true},
            {'columns': ['tenant_id', 'started_date']},
            {'columns': ['tenant_id', 'loaded_at']},
        ],
    )
}}

with

calls as (

    select * from {{ ref('int_llm_calls_priced') }} as calls

    {% if is_incremental() %}
        {{ where_not_built_yet('calls', ['trace_id', 'span_id'], ['trace_id', 'span_id']) }}
    {% endif %}

),

final as (

    select
        -- ids
        trace_id,
        span_id,
        tenant_id,
        conversation_id,
        user_id,

        -- strings
        agent_name,
        provider_name,
        operation_name,
        request_model,
        response_model,
        model_name,
        price_model_name,
        cost_source,
        error_type,

        -- numerics
        input_tokens,
        output_tokens,
        cache_read_tokens,
        cache_write_tokens,
        reasoning_tokens,
        total_tokens,
        ingested_cost_usd,
        computed_cost_usd,
        cost_usd,
        duration_ms,

        -- booleans
        is_error,
        is_priced,

        -- dates and timestamps
        started_date,
        started_at,
        loaded_at

    from calls

)

select * from final
