-- Publisher portal: the daily trend (marts.publisher_daily_shared).
select
    publisher_id,
    date_day,
    invocations,
    completed_invocations,
    errored_invocations,
    error_rate,
    active_tenants,
    revenue_usd,
    avg_response_time_ms,
    p95_response_time_ms,
    avg_satisfaction,
    has_suppressed_metrics,
    is_in_dashboard_window
from marts.publisher_daily_shared
order by publisher_id, date_day
