{#-
    The rows a generic test checks. dbt wraps the model of every generic test in
    `get_where_subquery`; this override adds, in the `realtime` and `hourly` cadences
    (`dbt build --selector realtime|hourly`), a window on the rows that build touched: those
    loaded within `lookback_hours` (the model's `loaded_at`, or `last_loaded_at` for the
    rollups keyed on it). Rows loaded earlier were tested by the build that loaded them, and
    the `daily` cadence (and any other build) tests every row, so a test's cost follows new
    data in the frequent builds and the whole history is still checked once a day.
    A model with neither column (a small aggregate mart) is tested whole in every cadence.
-#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- set window_column = test_window_column(relation) -%}
    {%- set conditions = [] -%}
    {%- if where -%}
        {%- do conditions.append('(' ~ where ~ ')') -%}
    {%- endif -%}
    {%- if window_column -%}
        {%- do conditions.append(
            window_column ~ ' >= now() - make_interval(hours => '
            ~ var('lookback_hours') ~ ')'
        ) -%}
    {%- endif -%}
    {%- if conditions -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ conditions | join(' and ') }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}


{#- The cadences whose tests check only the rows loaded within the lookback. -#}
{% macro is_windowed_test_cadence() -%}
    {{ return(invocation_args_dict.get('selector') in ['realtime', 'hourly']) }}
{%- endmacro %}


{#-
    The load-time column of `relation` to window its tests on, or none (test every row).
    Read from the project's graph (the columns each model or source documents), not from the
    database: no extra query per test.
-#}
{% macro test_window_column(relation) -%}
    {%- if not execute or not is_windowed_test_cadence() -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set documented = [] -%}
    {%- for node in graph.nodes.values() | list + graph.sources.values() | list -%}
        {%- if node.resource_type in ['model', 'source']
            and (node.schema | lower) == (relation.schema | lower)
            and ((node.alias or node.identifier or node.name) | lower) == (relation.identifier | lower) -%}
            {%- do documented.extend(node.columns.keys() | list) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- for column in ['loaded_at', 'last_loaded_at'] -%}
        {%- if column in documented -%}
            {{ return(column) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(none) }}
{%- endmacro %}
