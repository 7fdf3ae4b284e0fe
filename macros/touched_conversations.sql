{#-
    The `where` of an incremental conversation rollup: every conversation with an event loaded
    since `this` table's high-water mark (`last_loaded_at`) minus `lookback_hours`, and every
    conversation that lost events to a purge not yet applied (recomputed from what is left).
    `purge_time_column` is the rollup's time column compared with the purge cutoff.
    `also_touched_by`: another relation with `conversation_id` and `loaded_at`
    (fct_conversations: the LLM calls) whose rows loaded in the same window touch their
    conversation too. Loads are serialized, so a row loaded after a build has a `loaded_at`
    above every event that build saw, hence above the mark.

    The touched keys are gathered first, as an array, and each one's events read through the
    `conversation_id` index. Written as `in (subquery)`, the plan rested on the column's
    distinct count, which PostgreSQL's sample underestimates eightfold at 10 million events
    (108,525 for 820,251): 18,088 touched conversations then looked like most of the table and
    every staged event was read. An array computed at run time is planned as a few keys, so
    the index is used whatever the statistics say. The subquery reads staging itself, not the
    model's `events` CTE: a CTE read twice is materialized whole.
-#}
{% macro where_conversation_touched(purge_time_column, also_touched_by=none) -%}
    where
        conversation_id = any(array(
            select new_events.conversation_id
            from {{ ref('stg_agent_events__events') }} as new_events
            where
                new_events.loaded_at
                >= {{ lookback_high_water_mark('last_loaded_at') }}  -- noqa: LT02
            {% if also_touched_by is not none -%}
                union
                select new_rows.conversation_id
                from {{ also_touched_by }} as new_rows
                where
                    new_rows.loaded_at
                    >= {{ lookback_high_water_mark('last_loaded_at') }}{% endif %}  -- noqa: LT02
            {{ union_lost_to_purge('conversation_id', purge_time_column, 'last_loaded_at') }}
        ))
{%- endmacro %}
