-- Operator: conversations per hour (marts.conversations_hourly).
select
    hour,
    conversations,
    active_conversations,
    messages,
    total_tokens,
    errors,
    last_loaded_at
from marts.conversations_hourly
order by hour
