{#-
    Each model's planner settings, run as its pre-hook (dbt_project.yml).

    PostgreSQL's JIT compiles a query whose estimated cost passes `jit_above_cost`; the
    incremental models' lookback subqueries are estimated as if they read a third of their
    tables, so a build that reads a few hundred rows paid seconds of compilation per model
    (publisher_daily at 1M events: 2.9 s with JIT, 0.12 s without). Off for each model's own
    transaction only (`set local`), whatever the server's setting. Spark has no such setting:
    nothing to run (dbt skips an empty hook).
-#}
{% macro model_planner_settings() -%}
    {{ return(adapter.dispatch('model_planner_settings', 'agent_analytics')()) }}
{%- endmacro %}


{% macro default__model_planner_settings() -%}
    set local jit = off
{%- endmacro %}


{% macro spark__model_planner_settings() -%}
{%- endmacro %}
