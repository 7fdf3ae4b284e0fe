{#-
    The high-water mark of an incremental model, moved back by `lookback_hours`: max(`column`)
    of `{{ this }}` minus the lookback, or -infinity when the table is empty (so a model first
    built on empty raw tables still picks up every row later).
    Usage, in an `is_incremental()` branch:
        where loaded_at >= {{ lookback_high_water_mark('last_loaded_at') }}

    Read when the model compiles and written into its SQL as a literal: the planner then
    estimates how few rows lie past it and reads them through the `loaded_at` index, where a
    scalar subquery (unknown at plan time) made it scan a third of a 10-million-row table.
    The model's pre-hooks run after this read and only delete purged rows: a mark they would
    have moved back adds no row to read (what lies between was built, or purged, and the
    retention macros handle purges).
    Unit tests replace `this` with a fixture, which has no table to read: there the mark stays
    a subquery.
-#}
{% macro lookback_high_water_mark(column) -%}
    {%- set mark_sql -%}
        (
            select
                coalesce(
                    {{ built_max(column) }}
                    - make_interval(hours => {{ var('lookback_hours') }}),
                    '-infinity'::timestamptz
                )
        )
    {%- endset -%}
    {%- if execute and model.resource_type != 'unit_test' -%}
        {%- set mark = run_query('select ' ~ mark_sql ~ '::text').columns[0].values()[0] -%}
        cast('{{ mark }}' as timestamptz)
    {%- else -%}
        {{ mark_sql }}
    {%- endif -%}
{%- endmacro %}


{#-
    The `where` of an incremental model that appends rows keyed one to one on a source row
    (staging on raw, invocations and tool uses on staging): the rows of `relation_alias`
    loaded since this table's high-water mark minus `lookback_hours` whose key (`key`) is not
    built here yet (as `built_key`). The incremental mechanism, written once. A built row keeps
    its source row's `loaded_at`, so the anti-join probes only built rows inside the window.
    A key of several columns (an event's id and its sender: docs/contract.md) is a list, in
    the same order for `key` and `built_key`.
    Usage, in an `is_incremental()` branch after `from <source> as <relation_alias>`:
        {{ where_not_built_yet('marketplace_events', ['id', 'publisher_id'], ['event_id', 'publisher_id']) }}
-#}
{% macro where_not_built_yet(relation_alias, key, built_key) -%}
    {#- on a table a reader reads, the probe goes through the (reader key, key) index -#}
    {%- set reader_key = reader_key_column() -%}
    {%- set same_reader_key = (
        ' and built.' ~ reader_key ~ ' = ' ~ relation_alias ~ '.' ~ reader_key
    ) if reader_key else '' %}
    where
        {{ relation_alias }}.loaded_at >= {{ lookback_high_water_mark('loaded_at') }}
        and not exists (
            select from {{ this }} as built
            where
                {{ key_columns_match('built', built_key, relation_alias, key) }}{{ same_reader_key }}
                and built.loaded_at >= {{ lookback_high_water_mark('loaded_at') }}
        )
{%- endmacro %}


{#-
    max(`column`) over `this`, as a scalar subquery. On a table a tenant or publisher reads,
    every index leads with the reader's key (`reader_key_column()`, macros/security.sql), so
    there is no index on `column` alone to read the max from: it is read per key instead,
    walking the distinct keys through the index (a loose index scan: one probe per tenant,
    not a scan of the table), each key's max from its (key, `column`) index.
-#}
{% macro built_max(column) -%}
    {%- set reader_key = reader_key_column() -%}
    {%- if reader_key and model.resource_type != 'unit_test' -%}
        (
            with recursive built_keys as (
                (
                    select built.{{ reader_key }} as built_key
                    from {{ this }} as built
                    order by built.{{ reader_key }}
                    limit 1
                )
                union all
                select (
                    select built.{{ reader_key }}
                    from {{ this }} as built
                    where built.{{ reader_key }} > built_keys.built_key
                    order by built.{{ reader_key }}
                    limit 1
                )
                from built_keys
                where built_keys.built_key is not null
            )
            select max((
                select max(built.{{ column }})
                from {{ this }} as built
                where built.{{ reader_key }} = built_keys.built_key
            ))
            from built_keys
        )
    {%- else -%}
        (select max(built.{{ column }}) from {{ this }} as built)
    {%- endif -%}
{%- endmacro %}


{#-
    `left.l1 = right.r1 and left.l2 = right.r2 ...`: the join of two relations on a key of one
    column (a string) or several (lists of the same length, in the same order).
-#}
{% macro key_columns_match(left_alias, left_key, right_alias, right_key) -%}
    {%- set left_columns = [left_key] if left_key is string else left_key -%}
    {%- set right_columns = [right_key] if right_key is string else right_key -%}
    {%- for left_column in left_columns -%}
        {{ left_alias }}.{{ left_column }} = {{ right_alias }}.{{ right_columns[loop.index0] }}
        {%- if not loop.last %} and {% endif -%}
    {%- endfor -%}
{%- endmacro %}
