-- Operator: error rate and latency per publisher, agent and trailing window
-- (marts.operational_health).
select
    publisher_id,
    agent_id,
    window_minutes,
    invocations,
    completed_invocations,
    errored_invocations,
    error_rate,
    avg_response_time_ms,
    p50_response_time_ms,
    p95_response_time_ms,
    p99_response_time_ms,
    window_start_at,
    window_end_at,
    last_finished_at,
    last_loaded_at
from marts.operational_health
order by publisher_id, agent_id, window_minutes
