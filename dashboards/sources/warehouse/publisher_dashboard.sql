-- Publisher portal: the 30-day dashboard, as publishers see it (marts.publisher_dashboard_shared;
-- row-level security keeps the logins' own publishers, small groups are null).
select
    publisher_id,
    total_invocations,
    completed_invocations,
    errored_invocations,
    unique_tenants,
    active_installs,
    rating_count,
    avg_satisfaction,
    error_rate,
    avg_response_time_ms,
    p95_response_time_ms,
    total_revenue,
    avg_revenue_per_tenant,
    has_suppressed_metrics,
    window_start_date,
    window_end_date,
    warehouse_last_loaded_at
from marts.publisher_dashboard_shared
order by publisher_id
