-- Operator: error types by occurrences (marts.error_types_ranked).
select
    error_type,
    occurrences,
    conversations,
    share,
    rank,
    first_seen_at
from marts.error_types_ranked
order by rank, error_type
