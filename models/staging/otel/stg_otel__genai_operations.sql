{#-
    One row per GenAI operation span (an LLM call, an agent or a tool span) of `raw.spans`,
    every dialect read into one shape: the current GenAI conventions, the older ones
    instrumentations still emit by default, OpenInference and OpenLLMetry. Spans of no GenAI
    dialect (HTTP, database) are left out. The attribute names each column reads, first
    present wins, are listed in docs/models.md and the YAML.

    Incremental like stg_marketplace__events: the spans loaded since the high-water mark minus
    `lookback_hours` that are not staged yet; raw spans are never updated.
-#}
{{
    incremental_model(
        retention=retention_by_rows(
            time_column='started_at',
            key=['trace_id', 'span_id'],
            kept_in="source('otel', 'spans')",
        ),
        indexes=[
            {'columns': ['trace_id', 'span_id'], 'unique': true},
            {'columns': ['loaded_at'], 'type': 'brin'},
        ],
    )
}}

{%- set tenant_keys = [var('otel_tenant_attribute')] -%}
{%- set user_keys = var('otel_user_attributes') -%}
{%- set span_then_resource = ['attributes', 'resource_attributes'] %}

with

source as (

    select * from {{ source('otel', 'spans') }} as spans

    {% if is_incremental() %}
        {{ where_not_built_yet('spans', ['trace_id', 'span_id'], ['trace_id', 'span_id']) }}
    {% endif %}

),

read as (

    select
        trace_id,
        span_id,
        parent_span_id,
        batch_id,
        name as span_name,
        status_code,
        scope_name,
        start_time as started_at,
        end_time as ended_at,
        loaded_at,
        cast(duration_ns as {{ numeric_type() }}) / 1000000 as duration_ms,

        -- how each dialect says what the span is
        {{ otel_text(['gen_ai.operation.name']) }} as genai_operation_name,
        upper({{ otel_text(['openinference.span.kind']) }}) as openinference_span_kind,
        lower({{ otel_text(['traceloop.span.kind']) }}) as traceloop_span_kind,
        lower({{ otel_text(['llm.request.type']) }}) as traceloop_request_type,
        {{ otel_text(['gen_ai.provider.name']) }} as current_provider_name,
        {{ otel_text(['gen_ai.system']) }} as legacy_system_name,

        -- what every dialect reports, first name present wins
        lower(
            {{ otel_text(['gen_ai.provider.name', 'gen_ai.system', 'llm.provider', 'llm.system']) }}
        ) as provider_name,
        -- OpenInference's `llm.model_name` is the model that answered (its OpenAI
        -- instrumentation writes the response's dated model there); what was asked for is
        -- the `model` of its `llm.invocation_parameters`, a JSON object written as a string
        coalesce(
            {{ otel_text(['gen_ai.request.model']) }},
            {{ json_text_in_text(json_text('attributes', 'llm.invocation_parameters'), 'model') }},
            {{ otel_text(['embedding.model_name']) }}
        ) as request_model,
        {{ otel_text(['gen_ai.response.model', 'llm.response.model', 'llm.model_name']) }}
            as response_model,
        {{ otel_text(['gen_ai.agent.name', 'agent.name'], span_then_resource) }} as agent_name,
        {{ otel_text(['gen_ai.tool.name', 'tool.name']) }} as tool_name,
        {{ otel_text(['error.type']) }} as reported_error_type,
        {{
            otel_text(
                [
                    'gen_ai.conversation.id',
                    'session.id',
                    'traceloop.association.properties.session_id',
                ],
                span_then_resource,
            )
        }} as conversation_id,
        -- empty, not null, when no tenant is named: a mart's tenant column is its key
        coalesce({{ otel_text(tenant_keys, span_then_resource) }}, '') as tenant_id,
        {{ otel_text(user_keys, span_then_resource) }} as user_id,
        {{
            otel_number([
                'gen_ai.usage.input_tokens',
                'gen_ai.usage.prompt_tokens',
                'llm.token_count.prompt',
                'llm.usage.prompt_tokens',
            ])
        }} as input_tokens,
        {{
            otel_number([
                'gen_ai.usage.output_tokens',
                'gen_ai.usage.completion_tokens',
                'llm.token_count.completion',
                'llm.usage.completion_tokens',
            ])
        }} as output_tokens,
        {{
            otel_number([
                'gen_ai.usage.cache_read.input_tokens',
                'gen_ai.usage.cache_read_input_tokens',
                'llm.token_count.prompt_details.cache_read',
            ])
        }} as cache_read_tokens,
        {{
            otel_number([
                'gen_ai.usage.cache_creation.input_tokens',
                'gen_ai.usage.cache_creation_input_tokens',
                'llm.token_count.prompt_details.cache_write',
            ])
        }} as cache_write_tokens,
        {{
            otel_number([
                'gen_ai.usage.reasoning.output_tokens',
                'gen_ai.usage.reasoning_tokens',
                'llm.token_count.completion_details.reasoning',
            ])
        }} as reasoning_tokens,
        {{
            otel_number([
                'gen_ai.usage.total_tokens',
                'llm.usage.total_tokens',
                'llm.token_count.total',
            ])
        }} as reported_total_tokens,
        {{ otel_number(['gen_ai.usage.cost', 'llm.cost.total'], 'numeric', 0, 1e9) }}
            as ingested_cost_usd

    from source

),

classified as (

    select
        *,
        -- the dialect's own word decides; the first dialect that has one is asked
        case
            when
                genai_operation_name
                in ('chat', 'text_completion', 'generate_content', 'embeddings')
                then 'llm_call'
            when genai_operation_name in ('invoke_agent', 'create_agent', 'invoke_workflow')
                then 'agent'
            when genai_operation_name = 'execute_tool' then 'tool'
            when genai_operation_name is not null then 'other'
            when openinference_span_kind in ('LLM', 'EMBEDDING') then 'llm_call'
            when openinference_span_kind = 'AGENT' then 'agent'
            when openinference_span_kind = 'TOOL' then 'tool'
            when openinference_span_kind is not null then 'other'
            when traceloop_span_kind = 'agent' then 'agent'
            when traceloop_span_kind = 'tool' then 'tool'
            when traceloop_span_kind is not null then 'other'
            when traceloop_request_type is not null then 'llm_call'
            -- an older instrumentation without an operation name: a model was asked
            when
                coalesce(current_provider_name, legacy_system_name) is not null
                and coalesce(request_model, response_model) is not null
                then 'llm_call'
        end as operation_type,
        coalesce(
            genai_operation_name,
            case openinference_span_kind
                when 'LLM' then 'chat'
                when 'EMBEDDING' then 'embeddings'
            end,
            case traceloop_request_type
                when 'chat' then 'chat'
                when 'completion' then 'text_completion'
                when 'embedding' then 'embeddings'
                else traceloop_request_type
            end,
            lower(openinference_span_kind),
            traceloop_span_kind
        ) as operation_name,
        case
            when openinference_span_kind is not null then 'openinference'
            when traceloop_span_kind is not null or traceloop_request_type is not null
                then 'openllmetry'
            when current_provider_name is not null or genai_operation_name is not null
                then 'genai'
            else 'genai_legacy'
        end as dialect,
        status_code = 'error' or reported_error_type is not null as is_error

    from read

),

final as (

    select
        -- ids
        trace_id,
        span_id,
        parent_span_id,
        conversation_id,
        tenant_id,
        user_id,
        batch_id,

        -- strings
        span_name,
        dialect,
        operation_type,
        coalesce(operation_name, 'chat') as operation_name,
        provider_name,
        request_model,
        response_model,
        agent_name,
        tool_name,
        -- the conventions' fallback when a span failed without saying how
        case
            when is_error then coalesce(reported_error_type, '_OTHER')
        end as error_type,
        scope_name,

        -- numerics
        input_tokens,
        output_tokens,
        cache_read_tokens,
        cache_write_tokens,
        reasoning_tokens,
        reported_total_tokens,
        ingested_cost_usd,
        duration_ms,

        -- booleans
        is_error,

        -- timestamps
        started_at,
        ended_at,
        loaded_at

    from classified
    where operation_type is not null

)

select * from final
