{#-
    JSON fields in staging. PostgreSQL stores raw JSON as jsonb (`->>`, `->`); the Parquet lake
    stores it as JSON text, read on Spark with `get_json_object`.
-#}

{#-
    Spark's JSON path to the top-level `key`, as a SQL string literal: `$['key']`, so that a
    dotted name (OpenTelemetry's `gen_ai.usage.input_tokens`) is one key, not a nested path.
-#}
{% macro spark_json_path(key) -%}
    '$[\'{{ key }}\']'
{%- endmacro %}

{#- The text of `key` in the JSON object `json_column` (null when missing or JSON null). -#}
{% macro json_text(json_column, key) -%}
    {{ return(adapter.dispatch('json_text', 'agent_analytics')(json_column, key)) }}
{%- endmacro %}

{% macro default__json_text(json_column, key) -%}
    {{ json_column }} ->> '{{ key }}'
{%- endmacro %}

{% macro spark__json_text(json_column, key) -%}
    get_json_object({{ json_column }}, {{ spark_json_path(key) }})
{%- endmacro %}



{#-
    The text of `key` in a JSON object written as a string (`text`), e.g. an attribute that
    holds serialised JSON; null when missing or not text. PostgreSQL 15 cannot try a cast to
    jsonb without failing the whole query on bad input, so it takes the first
    `"key": "value"` pair by pattern; Spark parses it (`get_json_object` is null on bad JSON).
-#}
{% macro json_text_in_text(text, key) -%}
    {{ return(adapter.dispatch('json_text_in_text', 'agent_analytics')(text, key)) }}
{%- endmacro %}

{% macro default__json_text_in_text(text, key) -%}
    nullif(substring({{ text }} from '"{{ key }}"\s*:\s*"([^"\\]*)"'), '')
{%- endmacro %}

{% macro spark__json_text_in_text(text, key) -%}
    nullif(get_json_object({{ text }}, {{ spark_json_path(key) }}), '')
{%- endmacro %}

{#- The JSON value at `key` (jsonb on PostgreSQL, JSON text on Spark). -#}
{% macro json_value(json_column, key) -%}
    {{ return(adapter.dispatch('json_value', 'agent_analytics')(json_column, key)) }}
{%- endmacro %}

{% macro default__json_value(json_column, key) -%}
    {{ json_column }} -> '{{ key }}'
{%- endmacro %}

{% macro spark__json_value(json_column, key) -%}
    get_json_object({{ json_column }}, {{ spark_json_path(key) }})
{%- endmacro %}


{#- An empty JSON array, the default of a missing list. -#}
{% macro empty_json_array() -%}
    {{ return(adapter.dispatch('empty_json_array', 'agent_analytics')()) }}
{%- endmacro %}

{% macro default__empty_json_array() -%}
    cast('[]' as jsonb)
{%- endmacro %}

{% macro spark__empty_json_array() -%}
    '[]'
{%- endmacro %}
