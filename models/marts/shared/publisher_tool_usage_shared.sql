{#-
    What a publisher may see of `publisher_tool_usage`: its own tools only (row-level security
    on `publisher_id`), and only the tools used by enough tenants: a tool whose events and
    whose listing invocations both come from fewer than `min_tenants_per_aggregate` tenants
    is not a row at all (its existence would say that a few tenants use it). In a row, the
    tool-event metrics (`tool_event_calls`, `failures`, `failure_rate`) are null when the
    events come from fewer tenants, and then the tool reads as one without events
    (`has_tool_events` false, `calls` the list entries); the list counts are null when the
    listing invocations come from fewer tenants. Every figure coarsened to its step
    (macros/security.sql). Which column is published how: its mapping in
    macros/shared_marts.sql.
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
    where {{ in_dashboard_window('used_date') }}
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

published as (

    -- calls: the tool events when they are published; otherwise the list entries, as for a
    -- tool without events (so a null never says that a few tenants sent events); a tool
    -- below the threshold in both groups is not a row
    select
        *,
        case
            when has_tool_events and is_events_published then tool_event_calls
            when is_listing_published then listed_in_completions + listed_in_errors
        end as published_calls,
        has_tool_events and is_events_published as published_has_tool_events,
        not is_events_published or not is_listing_published as has_suppressed_metrics

    from usage_with_tenants
    where is_events_published or is_listing_published

),

final as (

    -- the columns of its mapping (macros/shared_marts.sql)
    select
        {{ shared_mart_columns('publisher_tool_usage_shared') }}

    from published

)

select * from final
