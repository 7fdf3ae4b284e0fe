{#-
    On-run-start: the raw tables of the Parquet lake (`agent-loader load --lake`, located by
    $AGENT_ANALYTICS_LAKE) declared in Spark's catalog as schema `raw`, so the sources read
    them as they read PostgreSQL's `raw`. The columns are the loader's (loader/ingest/lake.py),
    partitioned by load batch; `msck repair` registers the batches loaded since the last run.
    Nothing on PostgreSQL, where `agent-loader init` creates `raw`.
-#}
{% macro lake_sources() -%}
    {{ return(adapter.dispatch('lake_sources', 'agent_analytics')()) }}
{%- endmacro %}


{% macro default__lake_sources() -%}
{%- endmacro %}


{% macro spark__lake_sources() -%}
    {%- set lake = env_var('AGENT_ANALYTICS_LAKE', 'lake') -%}
    {%- set tables = {
        'agent_events': 'event_id string, conversation_id string, session_id string,'
            ~ ' event_type string, event_ts timestamp, agent_name string, user_id string,'
            ~ ' payload string, metadata string, loaded_at timestamp, batch_id bigint',
        'marketplace_events': 'id string, event_type string, agent_id string,'
            ~ ' publisher_id string, tenant_id string, event_ts timestamp, properties string,'
            ~ ' loaded_at timestamp, batch_id bigint',
        'spans': 'trace_id string, span_id string, parent_span_id string, name string,'
            ~ ' kind string, start_time timestamp, end_time timestamp, duration_ns bigint,'
            ~ ' status_code string, status_message string, attributes string,'
            ~ ' resource_attributes string, scope_name string, scope_version string,'
            ~ ' events string, loaded_at timestamp, batch_id bigint',
        'quarantine': 'position bigint, span_index bigint, raw_text string, raw_bytes bigint,'
            ~ ' reason string, quarantined_at timestamp, batch_id bigint',
    } -%}
    {%- if execute -%}
        {%- do run_query('create database if not exists raw') -%}
        {%- for name, columns in tables.items() -%}
            {%- do run_query(
                'create table if not exists raw.' ~ name ~ ' (' ~ columns ~ ')'
                ~ ' using parquet partitioned by (batch_id)'
                ~ " location '" ~ lake ~ '/' ~ name ~ "'"
            ) -%}
            {%- do run_query('msck repair table raw.' ~ name) -%}
        {%- endfor -%}
        {#- the lake has no purges (retention on a lake drops partitions): an empty table -#}
        {%- do run_query(
            'create table if not exists raw.purges (purge_id bigint, older_than string,'
            ~ ' cutoff timestamp, agent_events bigint, marketplace_events bigint,'
            ~ ' quarantine bigint, started_at timestamp, finished_at timestamp) using parquet'
        ) -%}
    {%- endif -%}
    select 1
{%- endmacro %}
