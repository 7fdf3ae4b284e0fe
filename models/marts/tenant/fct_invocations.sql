{#-
    One row per invocation (as in the marketplace reference, an `agent_completed` or
    `agent_errored` event): the
    row-level usage facts a tenant may read about itself (row-level security on `tenant_id`
    for the tenant role; the operator reads every row). No text, no tool arguments.

    Incremental like int_invocations_enriched: the invocations loaded since the high-water
    mark minus `lookback_hours` that are not here yet; what `agent-loader purge` deleted is
    dropped by the pre-hook (macros/retention.sql).
-#}
{{
    incremental_model(
        retention=retention_by_rows(
            time_column='finished_at',
            key=['invocation_id', 'publisher_id'],
            kept_in="ref('int_invocations_enriched')",
        ),
        indexes=[
            {'columns': ['tenant_id', 'invocation_id', 'publisher_id'], 'unique': true},
            {'columns': ['tenant_id', 'finished_date']},
            {'columns': ['tenant_id', 'loaded_at']},
        ],
    )
}}

with

invocations as (

    select * from {{ ref('int_invocations_enriched') }} as invocations

    {% if is_incremental() %}
        {{
            where_not_built_yet(
                'invocations', ['invocation_id', 'publisher_id'], ['invocation_id', 'publisher_id']
            )
        }}
    {% endif %}

),

final as (

    select
        -- ids
        invocation_id,
        tenant_id,
        publisher_id,
        agent_id,

        -- strings
        error_type,

        -- numerics
        input_tokens,
        output_tokens,
        total_tokens,
        duration_ms,
        cost_usd,
        tool_call_count,

        -- booleans
        is_success,

        -- dates and timestamps
        finished_date,
        finished_at,
        loaded_at

    from invocations

)

select * from final
