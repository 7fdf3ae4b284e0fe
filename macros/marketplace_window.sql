{#-
    The build date and the dashboard window of the marketplace marts, as SQL date expressions.

    `as_of` (var, a date `YYYY-MM-DD`; a timestamp is cut to its date) pins the build date so
    tests and backfills are reproducible; unset, it is today in UTC. The dashboard window is the
    `dashboard_window_days` calendar days (UTC) ending with the `as_of` date, both ends included:
    whole days, so the rows of `publisher_daily` inside the window add up to the dashboard.
-#}
{% macro marketplace_as_of_date() -%}
    {%- if var('as_of', none) is none -%}
        {{ utc_today() }}
    {%- else -%}
        cast('{{ var("as_of") }}' as date)
    {%- endif -%}
{%- endmacro %}

{% macro marketplace_window_start_date() -%}
    ({{ marketplace_as_of_date() }} - {{ var('dashboard_window_days', 30) | int - 1 }})
{%- endmacro %}

{#- Whether the date column `date_column` falls in the dashboard window (both ends included). -#}
{% macro in_dashboard_window(date_column) -%}
    {{ date_column }} between {{ marketplace_window_start_date() }} and {{ marketplace_as_of_date() }}
{%- endmacro %}

{#- The UTC calendar date of a timestamptz column. -#}
{% macro utc_date(column) -%}
    {{ return(adapter.dispatch('utc_date', 'agent_analytics')(column)) }}
{%- endmacro %}

{% macro default__utc_date(column) -%}
    cast({{ column }} at time zone 'utc' as date)
{%- endmacro %}
