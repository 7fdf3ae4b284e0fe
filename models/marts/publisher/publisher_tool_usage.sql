{{
    config(
        indexes=[
            {'columns': ['publisher_id', 'tool_name'], 'unique': true},
        ],
    )
}}

with

tool_uses as (

    select * from {{ ref('int_tool_uses_unioned') }}

),

window_tool_uses as (

    select * from tool_uses
    where {{ in_dashboard_window('used_date') }}

),

counted as (

    select
        publisher_id,
        tool_name,
        count(*) filter (
            where reported_by = 'tool_event' and not is_failure
        ) as tool_called_events,
        count(*) filter (where reported_by = 'tool_event' and is_failure) as tool_failed_events,
        count(*) filter (where reported_by = 'completed_invocation') as listed_in_completions,
        count(*) filter (where reported_by = 'errored_invocation') as listed_in_errors

    from window_tool_uses
    group by publisher_id, tool_name

),

read_calls as (

    -- the calls the tool events report, read as the `tool_failure_reading` var says
    select
        *,
        {{ tool_event_calls('tool_called_events', 'tool_failed_events') }} as tool_event_calls,
        tool_called_events + tool_failed_events > 0 as has_tool_events

    from counted

),

final as (

    -- calls: the tool events when the tool has any (they carry the outcome, and the
    -- invocations' lists name the same calls again); otherwise the list entries
    select
        publisher_id,
        tool_name,
        case
            when has_tool_events then tool_event_calls
            else listed_in_completions + listed_in_errors
        end as calls,
        tool_failed_events as failures,
        {{ tool_failure_rate('tool_failed_events', 'tool_event_calls') }} as failure_rate,
        tool_event_calls,
        listed_in_completions,
        listed_in_errors,
        has_tool_events,
        {{ marketplace_window_start_date() }} as window_start_date,
        {{ marketplace_as_of_date() }} as window_end_date

    from read_calls

)

select * from final
