{#-
    Dates and times that differ by engine. The Spark profile sets the session time zone to
    UTC, so a timestamp's UTC date and hour are plain `to_date` and `date_trunc` there.
-#}

{#- The UTC hour (timestamptz) a timestamp falls in. -#}
{% macro utc_hour(column) -%}
    {{ return(adapter.dispatch('utc_hour', 'agent_analytics')(column)) }}
{%- endmacro %}

{% macro default__utc_hour(column) -%}
    date_trunc('hour', {{ column }}, 'UTC')
{%- endmacro %}

{% macro spark__utc_hour(column) -%}
    date_trunc('hour', {{ column }})
{%- endmacro %}


{#- Seconds from `start` to `end` (two timestamps), with their microseconds. -#}
{% macro seconds_between(start, end) -%}
    {{ return(adapter.dispatch('seconds_between', 'agent_analytics')(start, end)) }}
{%- endmacro %}

{% macro default__seconds_between(start, end) -%}
    extract(epoch from {{ end }} - {{ start }})
{%- endmacro %}

{% macro spark__seconds_between(start, end) -%}
    cast((unix_micros({{ end }}) - unix_micros({{ start }})) / 1000000 as decimal(38, 6))
{%- endmacro %}


{#- The UTC calendar date of a timestamp column. -#}
{% macro spark__utc_date(column) -%}
    to_date({{ column }})
{%- endmacro %}


{#- Today, in UTC. -#}
{% macro utc_today() -%}
    {{ return(adapter.dispatch('utc_today', 'agent_analytics')()) }}
{%- endmacro %}

{% macro default__utc_today() -%}
    cast(now() at time zone 'utc' as date)
{%- endmacro %}

{% macro spark__utc_today() -%}
    current_date()
{%- endmacro %}
