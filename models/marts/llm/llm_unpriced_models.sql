{#-
    The models LLM calls named that no price covers and whose span carried no cost: one row
    per model (response model, else requested model) and provider, with the calls and tokens
    left unpriced. Empty when every call is priced; a row here means `seeds/model_prices.csv`
    needs a refresh (`agent-loader prices`) or the model is the deployment's own.
-#}
{{
    config(
        indexes=[
            {'columns': ['model_name']},
        ],
    )
}}

with

calls as (

    select * from {{ ref('int_llm_calls_priced') }}

),

unpriced_calls as (

    select * from calls
    where
        not is_priced
        and started_date <= {{ marketplace_as_of_date() }}

),

final as (

    select
        -- strings
        coalesce(model_name, '') as model_name,
        coalesce(provider_name, '') as provider_name,

        -- numerics
        count(*) as calls,
        count(distinct tenant_id) as tenants,
        coalesce(sum(input_tokens), 0)::bigint as input_tokens,
        coalesce(sum(output_tokens), 0)::bigint as output_tokens,

        -- timestamps
        min(started_at) as first_call_at,
        max(started_at) as last_call_at

    from unpriced_calls
    group by coalesce(model_name, ''), coalesce(provider_name, '')

)

select * from final
