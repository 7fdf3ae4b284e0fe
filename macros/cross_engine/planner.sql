{#-
    Each model's planner settings, run as its pre-hook (dbt_project.yml).

    PostgreSQL's JIT compiles a query whose estimated cost passes `jit_above_cost`; the
    incremental models' lookback subqueries are estimated as if they read a third of their
    tables, so a build that reads a few hundred rows paid seconds of compilation per model
    (publisher_daily at 1M events: 2.9 s with JIT, 0.12 s without). Off for each model's own
    transaction only (`set local`), whatever the server's setting.

    An incremental run reads the few rows of the touched keys (conversations, days) through
    their indexes, rows just written or recently read, so in memory; at the default
    `random_page_cost` (4, a spinning disk's) the planner preferred to hash all of staging
    instead (at 10M events, a sequential scan of 2.7 GB for 200,000 rows). 1.1 (the usual
    setting for SSDs and cached data) for those runs only; full builds keep the server's.
    Spark has no such settings: nothing to run (dbt skips an empty hook).
-#}
{% macro model_planner_settings() -%}
    {{ return(adapter.dispatch('model_planner_settings', 'agent_analytics')()) }}
{%- endmacro %}


{% macro default__model_planner_settings() -%}
    set local jit = off
    {%- if is_incremental() %};
        set local random_page_cost = 1.1
    {%- endif %}
{%- endmacro %}


{% macro spark__model_planner_settings() -%}
{%- endmacro %}


{#-
    Post-hook of the staging and intermediate tables (never a mart's: macros/security.sql
    switches their statistics off): planner statistics, when the table has none or
    more than a tenth of its rows changed since they were taken (autovacuum's own rule). The
    next model, and the next build, plan with them: with none, PostgreSQL guesses that a
    third of a table lies past an incremental model's high-water mark and scans all of it
    (at 10M events, seconds per conversation model). Autovacuum does the same when it is on
    and has come by; a build cannot count on either. Spark keeps no such statistics.
-#}
{% macro analyze_when_stale() -%}
    {{ return(adapter.dispatch('analyze_when_stale', 'agent_analytics')()) }}
{%- endmacro %}


{% macro default__analyze_when_stale() -%}
    {%- if config.get('materialized') in ['table', 'incremental'] -%}
        do $$
        begin
            if not exists (
                select from pg_stats
                where schemaname = '{{ this.schema }}' and tablename = '{{ this.identifier }}'
            ) or exists (
                select from pg_stat_user_tables as counted
                where
                    counted.relid = '{{ this }}'::regclass
                    and counted.n_mod_since_analyze > 0.1 * greatest(counted.n_live_tup, 1)
            ) then
                analyze {{ this }};
            end if;
        end
        $$
    {%- endif -%}
{%- endmacro %}


{% macro spark__analyze_when_stale() -%}
{%- endmacro %}


{#-
    `with name as {{ materialized_cte() }} (...)`: a CTE PostgreSQL computes once, as
    written, instead of inlining it into the query that reads it. For a small CTE whose
    every row costs much (int_llm_calls_priced matches each distinct model name against the
    price patterns once): inlined, the planner joined every call to every price row first
    and ran the regular expression per pair (135 s for 31,000 calls, against under a second).
    Spark plans a CTE as written: nothing to add.
-#}
{% macro materialized_cte() -%}
    {{ return(adapter.dispatch('materialized_cte', 'agent_analytics')()) }}
{%- endmacro %}


{% macro default__materialized_cte() -%}
    materialized
{%- endmacro %}


{% macro spark__materialized_cte() -%}
{%- endmacro %}
