{#-
    On-run-start: every table the sources read from schema `raw` exists, else stop with the
    fix. `agent-loader init` creates them; without it a build printed one `relation "raw..."
    does not exist` per model and no hint. Reads the catalog, which every role may. Nothing on
    Spark, where on-run-start declares the lake's raw tables (lake_sources.sql).
-#}
{% macro check_raw_initialised() -%}
    {{ return(adapter.dispatch('check_raw_initialised', 'agent_analytics')()) }}
{%- endmacro %}


{% macro default__check_raw_initialised() -%}
    {%- if not execute -%}
        {{ return('') }}
    {%- endif -%}
    {%- set expected = [] -%}
    {%- for source in graph.sources.values() if source.schema == 'raw' -%}
        {%- do expected.append(source.identifier) -%}
    {%- endfor -%}
    {%- set found = run_query(
        "select expected.relname from unnest(array['" ~ expected | sort | join("', '")
        ~ "']::text []) as expected (relname) where not exists (select from pg_catalog.pg_class"
        ~ " as c inner join pg_catalog.pg_namespace as n on c.relnamespace = n.oid"
        ~ " where n.nspname = 'raw' and c.relname = expected.relname) order by 1"
    ) -%}
    {%- set missing = found.columns[0].values() -%}
    {%- if missing | length > 0 -%}
        {{ exceptions.raise_compiler_error(
            'schema raw is not set up in database ' ~ target.dbname ~ ' (missing: raw.'
            ~ missing | join(', raw.') ~ '): run `agent-loader init` against this database'
            ~ ' first (the same PG* variables), then rerun dbt'
        ) }}
    {%- endif -%}
{%- endmacro %}


{% macro spark__check_raw_initialised() -%}
{%- endmacro %}
