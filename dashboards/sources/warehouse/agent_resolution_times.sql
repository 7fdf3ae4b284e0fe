-- Operator: resolution time per agent (marts.agent_resolution_times).
select
    agent_name,
    conversations,
    completed_conversations,
    avg_resolution_seconds,
    median_resolution_seconds,
    p95_resolution_seconds
from marts.agent_resolution_times
order by conversations desc, agent_name
