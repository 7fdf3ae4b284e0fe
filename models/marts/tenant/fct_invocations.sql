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
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{{ delete_purged_rows('finished_at', ['invocation_id', 'publisher_id'], ref('int_invocations_enriched'), ['invocation_id', 'publisher_id'], 'loaded_at') }}",
        indexes=[
            {'columns': ['tenant_id', 'invocation_id', 'publisher_id'], 'unique': true},
            {'columns': ['tenant_id', 'finished_date']},
            {'columns': ['tenant_id', 'loaded_at']},
        ],
    )
}}

-- the retention pre-hook reads raw.purges (macros/retention.sql): an edge in the lineage
-- depends_on: {{ ref('stg_loader__purges') }}

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
