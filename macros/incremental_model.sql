{#-
    The configuration of an incremental model, declared once: a new incremental model is its
    SQL plus this one call at its top, in place of `config(...)`:

        {{
            incremental_model(
                unique_key='conversation_id',
                retention=retention_by_rows(
                    time_column='started_at',
                    key='conversation_id',
                    kept_in="ref('stg_agent_events__events')",
                ),
                indexes=[{'columns': ['conversation_id'], 'unique': true}],
            )
        }}

    - `unique_key`: none (the default) for a model that appends rows keyed one to one on an
      upstream row (`where_not_built_yet`, macros/lookback_high_water_mark.sql), which keep
      that row's `loaded_at` as the high-water mark; a column (or a list) for a model that
      recomputes whole keys and replaces them (`delete+insert`), which keeps
      `last_loaded_at` (macros/incremental_marts.sql, macros/touched_conversations.sql).
    - `retention` (required): how what `agent-loader purge` deleted leaves the table
      (macros/retention.sql), `retention_by_rows(...)` or `retention_by_rebuild(...)` below.
    - `indexes`: as dbt-postgres's `indexes` config.

    It declares what every incremental model shares: `on_schema_change='fail'` (a changed
    column needs `--full-refresh`), the retention pre-hook, and, outside staging, a
    dependency on `stg_loader__purges`, the purges the pre-hook reads at run time, so the
    lineage shows that edge. Staging reads them too, but names no edge: it would be a second
    child of the source `loader.purges` besides its staging view (a source staged twice).
    tests/e2e/test_incremental_wiring.py fails for an incremental model without them.
-#}
{% macro incremental_model(retention=none, unique_key=none, indexes=[]) -%}
    {%- if retention is none -%}
        {{ exceptions.raise_compiler_error(
            "incremental_model() needs retention=retention_by_rows(...) or retention_by_rebuild(...)"
        ) }}
    {%- endif -%}
    {#- the column whose max is the table's high-water mark (compared with a purge's end) -#}
    {%- set high_water_column = 'loaded_at' if unique_key is none else 'last_loaded_at' -%}
    {%- set hook_arguments = retention.arguments + (
        [jinja_literal(high_water_column)] if retention.takes_high_water_column else []
    ) -%}
    {%- set hook = retention.hook ~ '(' ~ hook_arguments | join(', ') ~ ')' -%}
    {{ config(
        materialized='incremental',
        incremental_strategy='append' if unique_key is none else 'delete+insert',
        unique_key=unique_key,
        on_schema_change='fail',
        pre_hook='{{ ' ~ hook ~ ' }}',
        indexes=indexes,
    ) }}
    {#- `model`: not in a linter's templating, which lints the models outside staging -#}
    {%- if not (model is defined and model.fqn[1] == 'staging') -%}
        {%- do ref('stg_loader__purges') -%}
    {%- endif -%}
{%- endmacro %}


{#-
    `retention` of a model keyed by rows of an upstream relation: an unseen purge deletes
    its rows (key `key`) older than the purge's cutoff (by `time_column`) and no longer in
    `kept_in` (keyed by `kept_key`, by default the same columns), as a full refresh would
    (`delete_purged_rows`). `kept_in` is the relation as Jinja text, rendered when the hook
    runs: "ref('stg_marketplace__events')" or, in staging, "source('marketplace', ...)". A key
    of several columns is a list.
-#}
{% macro retention_by_rows(time_column, key, kept_in, kept_key=none) -%}
    {%- set kept_key = key if kept_key is none else kept_key -%}
    {{ return({
        'hook': 'delete_purged_rows',
        'arguments': [
            jinja_literal(time_column), jinja_literal(key), kept_in, jinja_literal(kept_key)
        ],
        'takes_high_water_column': true,
    }) }}
{%- endmacro %}


{#-
    `retention` of an aggregate model (macros/incremental_marts.sql): after an unseen purge
    the table is emptied and rebuilt; otherwise the rows dated (by `date_column`) after
    `as_of_date`, a SQL date expression as Jinja text (e.g. 'marketplace_as_of_date()'),
    are deleted (`delete_rows_to_rebuild`).
-#}
{% macro retention_by_rebuild(date_column, as_of_date=none) -%}
    {{ return({
        'hook': 'delete_rows_to_rebuild',
        'arguments': [jinja_literal(date_column)] + ([] if as_of_date is none else [as_of_date]),
        'takes_high_water_column': false,
    }) }}
{%- endmacro %}


{#- A column name, or a list of them, as a Jinja literal: 'a' or ['a', 'b']. -#}
{% macro jinja_literal(columns) -%}
    {{ return(columns | tojson | replace('"', "'")) }}
{%- endmacro %}
