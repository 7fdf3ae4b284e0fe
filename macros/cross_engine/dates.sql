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


{#- `timestamp` minus `minutes` (a number or an integer column) minutes. -#}
{% macro minus_minutes(timestamp, minutes) -%}
    {{ return(adapter.dispatch('minus_minutes', 'agent_analytics')(timestamp, minutes)) }}
{%- endmacro %}

{% macro default__minus_minutes(timestamp, minutes) -%}
    {{ timestamp }} - make_interval(mins => {{ minutes }})
{%- endmacro %}

{% macro spark__minus_minutes(timestamp, minutes) -%}
    {{ timestamp }} - make_dt_interval(0, 0, {{ minutes }}, 0)
{%- endmacro %}


{#- Whole months from the month start `earlier` to the month start `later` (integer). -#}
{% macro months_between_month_starts(later, earlier) -%}
    {{ return(adapter.dispatch('months_between_month_starts', 'agent_analytics')(later, earlier)) }}
{%- endmacro %}

{% macro default__months_between_month_starts(later, earlier) -%}
    cast(
            extract(year from age(
                {{ later }},
                {{ earlier }}
            )) * 12
            + extract(month from age(
                {{ later }},
                {{ earlier }}
            )) as integer
        )
{%- endmacro %}

{% macro spark__months_between_month_starts(later, earlier) -%}
    cast(months_between({{ later }}, {{ earlier }}) as integer)
{%- endmacro %}
