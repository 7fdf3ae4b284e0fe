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
