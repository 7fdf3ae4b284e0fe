{#-
    What a publisher may see of `publisher_tool_usage`: its own tools only (row-level security
    on `publisher_id`), and only the tools used by enough tenants: a tool whose events and
    whose listing invocations both come from fewer than `min_tenants_per_aggregate` tenants
    is not a row at all (its existence would say that a few tenants use it). In a row, the
    tool-event metrics (`tool_event_calls`, `failures`, `failure_rate`) are null when the
    events come from fewer tenants, and then the tool reads as one without events
    (`has_tool_events` false, `calls` the list entries); the list counts are null when the
    listing invocations come from fewer tenants. Every figure coarsened to its step
    (macros/security.sql).
-#}
{{
    config(
        indexes=[
            {'columns': ['publisher_id', 'tool_name'], 'unique': true},
        ],
    )
}}

{%- set min_tenants = var('min_tenants_per_aggregate') | int %}

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
        coalesce(tool_tenants.event_tenants, 0) >= {{ min_tenants }} as is_events_published,
        coalesce(tool_tenants.listing_tenants, 0) >= {{ min_tenants }} as is_listing_published

    from tool_usage
    left join tool_tenants
        on
            tool_usage.publisher_id = tool_tenants.publisher_id
            and tool_usage.tool_name = tool_tenants.tool_name

),

final as (

    -- calls: the tool events when they are published; otherwise the list entries, as for a
    -- tool without events (so a null never says that a few tenants sent events)
    select
        publisher_id,
        tool_name,
        case
            when has_tool_events and is_events_published
                then {{ coarsen_count('tool_event_calls') }}
            when is_listing_published
                then {{ coarsen_count('listed_in_completions + listed_in_errors') }}
        end as calls,
        {{ suppress_unless(coarsen_count('failures'), 'is_events_published') }} as failures,
        {{ suppress_unless(
            coarsen('failure_rate', 'publish_rate_step'), 'is_events_published'
        ) }} as failure_rate,
        {{ suppress_unless(coarsen_count('tool_event_calls'), 'is_events_published') }}
            as tool_event_calls,
        {{ suppress_unless(coarsen_count('listed_in_completions'), 'is_listing_published') }}
            as listed_in_completions,
        {{ suppress_unless(coarsen_count('listed_in_errors'), 'is_listing_published') }}
            as listed_in_errors,
        has_tool_events and is_events_published as has_tool_events,
        not is_events_published or not is_listing_published as has_suppressed_metrics,
        window_start_date,
        window_end_date

    from usage_with_tenants
    -- a tool below the threshold in both groups is not a row
    where is_events_published or is_listing_published

)

select * from final
