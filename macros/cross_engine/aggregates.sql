{#-
    Aggregates and JSON arrays that differ by engine.
-#}

{#-
    The `value` of the first row in the order `order_by` (columns, each optionally `desc`),
    among the rows `filter` keeps (a boolean SQL expression, or none for all rows).
    PostgreSQL: `(array_agg(value order by ...))[1]`. Spark: `min_by` over a struct of the
    order columns (`max_by` when they are all descending).
-#}
{% macro first_by(value, order_by, filter=none) -%}
    {{ return(adapter.dispatch('first_by', 'agent_analytics')(value, order_by, filter)) }}
{%- endmacro %}

{% macro default__first_by(value, order_by, filter=none) -%}
    (array_agg({{ value }} order by {{ order_by | join(', ') }})
    {%- if filter is not none %} filter (where {{ filter }}){% endif %})[1]
{%- endmacro %}

{% macro spark__first_by(value, order_by, filter=none) -%}
    {%- set descending = order_by[0].endswith(' desc') -%}
    {%- set columns = [] -%}
    {%- for column in order_by -%}
        {%- do columns.append(column.replace(' desc', '')) -%}
    {%- endfor -%}
    {{ 'max_by' if descending else 'min_by' }}(
        {{ value }}, struct({{ columns | join(', ') }})
    )
    {%- if filter is not none %} filter (where {{ filter }}){% endif %}
{%- endmacro %}


{#- `value`s joined by `separator`, in the order of `order_by` (a list of columns). -#}
{% macro ordered_string_agg(value, separator, order_by) -%}
    {%- set implementation = adapter.dispatch('ordered_string_agg', 'agent_analytics') -%}
    {{ return(implementation(value, separator, order_by)) }}
{%- endmacro %}

{% macro default__ordered_string_agg(value, separator, order_by) -%}
    string_agg(
        {{ value }}, '{{ separator }}' order by {{ order_by | join(', ') }}
    )
{%- endmacro %}

{% macro spark__ordered_string_agg(value, separator, order_by) -%}
    array_join(
        transform(
            array_sort(collect_list(struct({{ order_by | join(', ') }}, {{ value }} as value))),
            entry -> entry.value
        ),
        '{{ separator }}'
    )
{%- endmacro %}


{#- The number of elements of a JSON array column. -#}
{% macro json_array_length(column) -%}
    {{ return(adapter.dispatch('json_array_length', 'agent_analytics')(column)) }}
{%- endmacro %}

{% macro default__json_array_length(column) -%}
    jsonb_array_length({{ column }})
{%- endmacro %}

{% macro spark__json_array_length(column) -%}
    json_array_length({{ column }})
{%- endmacro %}


{#-
    A `from` clause continuation: one row per element of the JSON array of strings `column`,
    as `alias`.`value_name` (text) and `alias`.`position_name` (1 for the first element).
-#}
{% macro cross_join_json_array_elements(column, alias, value_name, position_name) -%}
    {%- set implementation = adapter.dispatch(
        'cross_join_json_array_elements', 'agent_analytics'
    ) -%}
    {{ return(implementation(column, alias, value_name, position_name)) }}
{%- endmacro %}

{% macro default__cross_join_json_array_elements(column, alias, value_name, position_name) -%}
    cross join
        lateral jsonb_array_elements_text({{ column }})
        with ordinality as {{ alias }} ({{ value_name }}, {{ position_name }})
{%- endmacro %}

{% macro spark__cross_join_json_array_elements(column, alias, value_name, position_name) -%}
    lateral view inline(
        transform(
            from_json({{ column }}, 'array<string>'),
            (item, index) -> named_struct(
                '{{ value_name }}', item, '{{ position_name }}', cast(index + 1 as bigint)
            )
        )
    ) {{ alias }}
{%- endmacro %}
