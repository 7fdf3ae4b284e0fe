{#-
    Retention in the incremental models: after `agent-loader purge`, the next build drops
    what was purged, so the models equal a `--full-refresh` on the purged raw tables.

    The loader records every purge in `raw.purges` (source `loader.purges`; the intermediate
    and mart models depend on its staging view `stg_loader__purges`, as
    macros/incremental_model.sql declares, so the lineage shows the edge): it deleted every
    raw event with `event_ts < cutoff`, or, for an erasure (`purge --user/--tenant`), some
    events of any age, recorded with cutoff 'infinity' so every row is checked. A purge is
    *unseen* by an incremental table when it finished after the newest load the table holds
    (its high-water column): every build that ran before the purge finished saw only loads
    older than the purge. Only then does a build do retention work, so a build with no new
    purge pays one small query per model.

    `unseen_purge_cutoff(column)` gives the latest cutoff of the purges unseen by `this` as a
    SQL literal, or none (nothing to do; also when not incremental or not executing).
-#}
{% macro unseen_purge_cutoff(high_water_column) -%}
    {#- unit tests replace `this` with fixtures: they test the models without retention -#}
    {%- if not execute or not is_incremental() or model.resource_type == 'unit_test' -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set found = run_query(
        "select max(purges.cutoff)::text from " ~ source('loader', 'purges') ~ " as purges"
        ~ " where purges.finished_at > coalesce(" ~ built_max(high_water_column)
        ~ ", '-infinity'::timestamptz)"
    ) -%}
    {%- set cutoff = found.columns[0].values()[0] -%}
    {{ return(none if cutoff is none else "cast('" ~ cutoff ~ "' as timestamptz)") }}
{%- endmacro %}


{#-
    Pre-hook of an incremental model: delete its rows whose event (time in `time_column`,
    key in `key_column`) is older than an unseen purge's cutoff and no longer in
    `kept_relation` (the upstream model or raw table, keyed by `kept_key`; a key of several
    columns is a list, as in `where_not_built_yet`). The existence check
    keeps an old event loaded after the purge (a late event), as a full refresh would.
-#}
{% macro delete_purged_rows(time_column, key_column, kept_relation, kept_key, high_water_column) -%}
    {%- set cutoff = unseen_purge_cutoff(high_water_column) -%}
    {%- if cutoff is not none %}
        delete from {{ this }} as built
        where
            built.{{ time_column }} < {{ cutoff }}
            and not exists (
                select from {{ kept_relation }} as kept
                where {{ key_columns_match('kept', kept_key, 'built', key_column) }}
            )
    {%- else %}
        select 1
    {%- endif %}
{%- endmacro %}


{#-
    Inside the key list of a model keyed by `key_column` that recomputes whole keys
    (conversations, `where_conversation_touched`): `union <keys of this older than the unseen
    purge's cutoff>`, so the keys that lost rows to a purge are recomputed from what is left;
    empty when no purge is unseen. Keys that lost every row are deleted by `delete_purged_rows`.
-#}
{% macro union_lost_to_purge(key_column, time_column, high_water_column) -%}
    {%- set cutoff = unseen_purge_cutoff(high_water_column) if execute else none -%}
    {%- if cutoff is not none -%}
        union
        select purged.{{ key_column }}
        from {{ this }} as purged
        where purged.{{ time_column }} < {{ cutoff }}
    {%- endif -%}
{%- endmacro %}
