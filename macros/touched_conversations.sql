{#-
    The `where` of an incremental conversation rollup: every conversation with an event loaded
    since `this` table's high-water mark (`last_loaded_at`) minus `lookback_hours`, and every
    conversation that lost events to a purge not yet applied (recomputed from what is left).
    `purge_time_column` is the rollup's time column compared with the purge cutoff.
    The subquery reads staging itself, not the model's `events` CTE: a CTE read twice is
    materialized whole.
-#}
{% macro where_conversation_touched(purge_time_column) -%}
    where
        conversation_id in (
            select new_events.conversation_id
            from {{ ref('stg_agent_events__events') }} as new_events
            where
                new_events.loaded_at
                >= {{ lookback_high_water_mark('last_loaded_at') }}
        )
        {{ or_lost_to_purge('conversation_id', purge_time_column, 'last_loaded_at') }}
{%- endmacro %}
