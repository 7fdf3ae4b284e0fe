-- Publisher portal: insights (marts.insights_shared).
select
    insight_id,
    publisher_id,
    agent_id,
    tool_name,
    severity,
    category,
    title,
    description,
    recommendation,
    metric_name,
    metric_value,
    threshold,
    window_start_date,
    window_end_date
from marts.insights_shared
order by publisher_id, severity, insight_id
