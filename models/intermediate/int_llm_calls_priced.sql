{#-
    One row per LLM call (a GenAI span whose operation is a model call: chat, completion,
    generate_content, embeddings; agent and tool spans are not calls), with its price and
    cost. The cost a span carries (`gen_ai.usage.cost`, `llm.cost.total`) wins; else the
    cost is the call's tokens times the `model_prices` row that matches it: its response
    model first, then its requested model (`match_pattern`, case-insensitive, whole name),
    the tier its input size selects, the row valid on the call's UTC day (the latest
    `valid_from` on or before it). A call with neither has a null cost, never zero.

    Tokens: input tokens include the cache reads and writes, output tokens the reasoning
    tokens (the GenAI conventions' definition); each kind is priced at its own price when the
    row lists one, else at the input (output) price.

    Incremental like int_invocations_enriched: the calls staged since the high-water mark
    minus `lookback_hours` that are not here yet. A price added later applies to calls
    loaded later; `--full-refresh` reprices every call.
-#}
{{
    incremental_model(
        retention=retention_by_rows(
            time_column='started_at',
            key=['trace_id', 'span_id'],
            kept_in="ref('stg_otel__genai_operations')",
        ),
        indexes=[
            {'columns': ['trace_id', 'span_id'], 'unique': true},
            {'columns': ['conversation_id']},
            {'columns': ['loaded_at']},
            {'columns': ['started_at'], 'type': 'brin'},
        ],
    )
}}

with

operations as (

    select * from {{ ref('stg_otel__genai_operations') }} as operations

    {% if is_incremental() %}
        {{ where_not_built_yet('operations', ['trace_id', 'span_id'], ['trace_id', 'span_id']) }}
    {% endif %}

),

model_prices as (

    select * from {{ ref('model_prices') }}

),

calls as (

    select
        *,
        {{ utc_date('started_at') }} as started_date

    from operations
    where operation_type = 'llm_call'

),

prices as (

    select
        *,
        -- matched ignoring case, as Langfuse's `(?i)` prefix asks (matches_ignoring_case)
        regexp_replace(match_pattern, '^[(][?]i[)]', '') as model_pattern

    from model_prices

),

call_models as (

    -- the few distinct names calls give: each is matched against the price patterns once
    -- (name_prices, materialized), not once per call and price row
    select response_model as call_model from calls
    where response_model is not null
    union
    select request_model as call_model from calls
    where request_model is not null

),

name_prices as {{ materialized_cte() }} (

    select
        call_models.call_model,
        prices.*

    from call_models
    inner join prices
        on {{ matches_ignoring_case('call_models.call_model', 'prices.model_pattern') }}

),

matched_calls as (

    -- the response model is matched first (rank 1), the requested model second (rank 2);
    -- a row matching both is also a rank-2 candidate, which rank 1 always outranks
    select
        calls.trace_id,
        calls.span_id,
        calls.started_date,
        calls.input_tokens,
        1 as match_rank,
        calls.response_model as call_model
    from calls
    where calls.response_model is not null

    union all

    select
        calls.trace_id,
        calls.span_id,
        calls.started_date,
        calls.input_tokens,
        2 as match_rank,
        calls.request_model as call_model
    from calls
    where calls.request_model is not null

),

price_candidates as (

    select
        matched_calls.trace_id,
        matched_calls.span_id,
        name_prices.model_name as price_model_name,
        name_prices.tier_name as price_tier_name,
        name_prices.valid_from as price_valid_from,
        name_prices.input_tokens_above,
        name_prices.input_usd_per_token,
        name_prices.output_usd_per_token,
        name_prices.cache_read_usd_per_token,
        name_prices.cache_write_usd_per_token,
        name_prices.reasoning_usd_per_token,
        name_prices.source_tier_id,
        matched_calls.match_rank

    from matched_calls
    inner join name_prices
        on
            matched_calls.call_model = name_prices.call_model
            and matched_calls.started_date >= name_prices.valid_from
            and (
                name_prices.input_tokens_above is null
                or coalesce(matched_calls.input_tokens, 0) > name_prices.input_tokens_above
            )

),

ranked_prices as (

    select
        *,
        row_number() over (
            partition by trace_id, span_id
            order by
                match_rank asc,
                input_tokens_above desc nulls last,
                price_valid_from desc,
                price_model_name asc,
                source_tier_id asc
        ) as price_rank

    from price_candidates

),

chosen_prices as (

    -- the best match, the highest input-size tier that applies, the latest price
    select * from ranked_prices
    where price_rank = 1

),

billed as (

    -- each kind of token at its price: cache reads and writes at theirs (else the input
    -- price), reasoning tokens at theirs when the row lists one (else as output tokens)
    select
        calls.*,
        chosen_prices.span_id is not null as has_price,
        chosen_prices.price_model_name,
        chosen_prices.price_tier_name,
        chosen_prices.price_valid_from,
        greatest(
            coalesce(calls.input_tokens, 0)
            - coalesce(calls.cache_read_tokens, 0)
            - coalesce(calls.cache_write_tokens, 0),
            0
        ) as billed_input_tokens,
        coalesce(calls.cache_read_tokens, 0) as billed_cache_read_tokens,
        coalesce(calls.cache_write_tokens, 0) as billed_cache_write_tokens,
        case
            when chosen_prices.reasoning_usd_per_token is not null
                then
                    greatest(
                        coalesce(calls.output_tokens, 0) - coalesce(calls.reasoning_tokens, 0), 0
                    )
            else coalesce(calls.output_tokens, 0)
        end as billed_output_tokens,
        case
            when chosen_prices.reasoning_usd_per_token is not null
                then coalesce(calls.reasoning_tokens, 0)
            else 0
        end as billed_reasoning_tokens,
        chosen_prices.input_usd_per_token as input_price,
        coalesce(chosen_prices.cache_read_usd_per_token, chosen_prices.input_usd_per_token)
            as cache_read_price,
        coalesce(chosen_prices.cache_write_usd_per_token, chosen_prices.input_usd_per_token)
            as cache_write_price,
        chosen_prices.output_usd_per_token as output_price,
        coalesce(chosen_prices.reasoning_usd_per_token, chosen_prices.output_usd_per_token)
            as reasoning_price

    from calls
    left join chosen_prices
        on
            calls.trace_id = chosen_prices.trace_id
            and calls.span_id = chosen_prices.span_id

),

computed as (

    select
        *,
        case
            when has_price and (input_tokens is not null or output_tokens is not null)
                then
                    {{ tokens_times_price('billed_input_tokens', 'input_price') }}
                    + {{ tokens_times_price('billed_cache_read_tokens', 'cache_read_price') }}
                    + {{ tokens_times_price('billed_cache_write_tokens', 'cache_write_price') }}
                    + {{ tokens_times_price('billed_output_tokens', 'output_price') }}
                    + {{ tokens_times_price('billed_reasoning_tokens', 'reasoning_price') }}
        end as computed_cost_usd

    from billed

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

        -- strings
        dialect,
        operation_name,
        provider_name,
        request_model,
        response_model,
        coalesce(response_model, request_model) as model_name,
        agent_name,
        error_type,
        price_model_name,
        price_tier_name,
        case
            when ingested_cost_usd is not null then 'span'
            when computed_cost_usd is not null then 'price_table'
        end as cost_source,

        -- numerics
        input_tokens,
        output_tokens,
        cache_read_tokens,
        cache_write_tokens,
        reasoning_tokens,
        -- input plus output; a span that reports only a total (OpenLLMetry) keeps it
        case
            when input_tokens is not null or output_tokens is not null
                then coalesce(input_tokens, 0) + coalesce(output_tokens, 0)
            else reported_total_tokens
        end as total_tokens,
        ingested_cost_usd,
        computed_cost_usd,
        coalesce(ingested_cost_usd, computed_cost_usd) as cost_usd,
        duration_ms,

        -- booleans
        is_error,
        coalesce(ingested_cost_usd, computed_cost_usd) is not null as is_priced,

        -- dates and timestamps
        price_valid_from,
        started_date,
        started_at,
        ended_at,
        loaded_at

    from computed

)

select * from final
