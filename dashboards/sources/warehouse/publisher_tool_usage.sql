-- Publisher portal: tool calls and failure rates (marts.publisher_tool_usage_shared).
select
    publisher_id,
    tool_name,
    calls,
    failures,
    failure_rate,
    has_suppressed_metrics,
    window_start_date,
    window_end_date
from marts.publisher_tool_usage_shared
order by publisher_id, calls desc nulls last, tool_name
