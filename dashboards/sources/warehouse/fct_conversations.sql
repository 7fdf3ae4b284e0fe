-- Operator: one row per conversation (marts.fct_conversations), to count conversations once
-- (summing conversations_hourly counts a conversation in every hour it has a message).
select
    conversation_id,
    started_at
from marts.fct_conversations
