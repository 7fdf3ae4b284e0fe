{#-
    Row generators, as `from` clause continuations (after the relation they extend).
-#}

{#-
    One row per `step` ('day' or 'month') from `start` to `stop` (dates, both included), as
    `alias`.`column`.
-#}
{% macro cross_join_date_series(start, stop, step, alias, column) -%}
    {%- set implementation = adapter.dispatch('cross_join_date_series', 'agent_analytics') -%}
    {{ return(implementation(start, stop, step, alias, column)) }}
{%- endmacro %}

{% macro default__cross_join_date_series(start, stop, step, alias, column) -%}
    cross join
        lateral generate_series(
            {{ start }},
            {{ stop }},
            interval '1 {{ step }}'
        ) as {{ alias }} ({{ column }})
{%- endmacro %}

{% macro spark__cross_join_date_series(start, stop, step, alias, column) -%}
    lateral view explode(
        sequence({{ start }}, {{ stop }}, interval 1 {{ step }})
    ) {{ alias }} as {{ column }}
{%- endmacro %}


{#- One row per value of the list `values` (integers), as `alias`.`column`. -#}
{% macro cross_join_values(values, alias, column) -%}
    {{ return(adapter.dispatch('cross_join_values', 'agent_analytics')(values, alias, column)) }}
{%- endmacro %}

{% macro default__cross_join_values(values, alias, column) -%}
    cross join unnest(array[{{ values | join(', ') }}]) as {{ alias }} ({{ column }})
{%- endmacro %}

{% macro spark__cross_join_values(values, alias, column) -%}
    lateral view explode(array({{ values | join(', ') }})) {{ alias }} as {{ column }}
{%- endmacro %}
