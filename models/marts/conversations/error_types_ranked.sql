{#-
    One row per error type (payload.error_type of error events): how often it occurred, its
    share of all errors and its rank, 1 = most common (ties broken by error_type, so ranks are
    unique and `rank <= 10` is exactly the reference's top 10).
-#}
{{
    config(
        indexes=[
            {'columns': ['error_type'], 'unique': true},
            {'columns': ['rank']},
        ],
    )
}}

with

errors as (

    select * from {{ ref('int_conversation_errors') }}

),

error_types as (

    select
        error_type,
        count(*) as occurrences,
        count(distinct conversation_id) as conversations,
        min(occurred_at) as first_seen_at,
        max(occurred_at) as last_seen_at

    from errors
    group by error_type

),

ranked as (

    select
        *,
        -- See the `error_share` and `error_rank` doc blocks. `share` and `rank` are the
        -- contract's names (non-reserved keywords in PostgreSQL, hence the RF04 exemptions).
        occurrences::numeric / sum(occurrences) over () as share,  -- noqa: RF04
        row_number() over (order by occurrences desc, error_type asc) as rank  -- noqa: RF04

    from error_types

),

final as (

    select
        error_type,
        occurrences,
        conversations,
        share,
        rank,
        first_seen_at,
        last_seen_at

    from ranked

)

select * from final
