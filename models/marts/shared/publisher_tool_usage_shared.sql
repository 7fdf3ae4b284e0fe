{#-
    What a publisher may see of `publisher_tool_usage`: its own tools only (row-level security
    on `publisher_id`); the tool-event metrics (`tool_event_calls`, `failures`,
    `failure_rate`) null when the tool's events in the window come from fewer than
    `min_tenants_per_aggregate` tenants, the list counts null when the invocations listing the
    tool do, and `calls` following whichever of the two it counts; every figure coarsened to
    its step (macros/security.sql).
-#}
{{
    config(
        indexes=[
            {'columns': ['publisher_id', 'tool_name'], 'unique': true},
        ],
    )
}}

with

tool_usage as (

    select * from {{ ref('publisher_tool_usage') }}

),

tool_uses as (

    select * from {{ ref('int_tool_uses_unioned') }}

),

tool_tenants as (

    select
        publisher_id,
        tool_name,
        count(distinct tenant_id) filter (where reported_by = 'tool_event') as event_tenants,
        count(distinct tenant_id) filter (where reported_by <> 'tool_event') as listing_tenants

    from tool_uses
    where
        used_date between {{ marketplace_window_start_date() }}
        and {{ marketplace_as_of_date() }}
    group by publisher_id, tool_name

),

usage_with_tenants as (

    select
        tool_usage.*,
        coalesce(tool_tenants.event_tenants, 0) as event_tenants,
        coalesce(tool_tenants.listing_tenants, 0) as listing_tenants,
        case
            when tool_usage.has_tool_events then coalesce(tool_tenants.event_tenants, 0)
            else coalesce(tool_tenants.listing_tenants, 0)
        end as calling_tenants

    from tool_usage
    left join tool_tenants
        on
            tool_usage.publisher_id = tool_tenants.publisher_id
            and tool_usage.tool_name = tool_tenants.tool_name

),

final as (

    select
        publisher_id,
        tool_name,
        {{ suppress_below_min_tenants(coarsen_count('calls'), 'calling_tenants') }} as calls,
        {{ suppress_below_min_tenants(coarsen_count('failures'), 'event_tenants') }} as failures,
        {{ suppress_below_min_tenants(
            coarsen('failure_rate', 'publish_rate_step'), 'event_tenants'
        ) }} as failure_rate,
        {{ suppress_below_min_tenants(coarsen_count('tool_event_calls'), 'event_tenants') }}
            as tool_event_calls,
        {{ suppress_below_min_tenants(
            coarsen_count('listed_in_completions'), 'listing_tenants'
        ) }}
            as listed_in_completions,
        {{ suppress_below_min_tenants(coarsen_count('listed_in_errors'), 'listing_tenants') }}
            as listed_in_errors,
        has_tool_events,
        (has_tool_events and event_tenants < {{ var('min_tenants_per_aggregate') | int }})
        or (
            listed_in_completions + listed_in_errors > 0
            and listing_tenants < {{ var('min_tenants_per_aggregate') | int }}
        ) as has_suppressed_metrics,
        window_start_date,
        window_end_date

    from usage_with_tenants

)

select * from final
