{#-
    A number read out of the JSON object `json_column` at `key`, cast to `type`; null when the
    value is not a JSON number, falls outside [`low`, `high`], or (for an integer type) is not
    whole.

    The loader's contract already quarantines such values (the same bounds: token counts and
    durations up to 10^12, costs up to 10^9); staging checks again, so that no row in raw,
    however it got there, can make a cast fail and stop `dbt build`.
-#}
{% macro json_number(json_column, key, type, low, high) -%}
    {%- set implementation = adapter.dispatch('json_number', 'agent_analytics') -%}
    {{ return(implementation(json_column, key, type, low, high)) }}
{%- endmacro %}


{% macro default__json_number(json_column, key, type, low, high) -%}
    {%- set value = json_column ~ " -> '" ~ key ~ "'" -%}
    {%- set number = 'cast(' ~ value ~ ' as numeric)' -%}
    {%- set is_integer = type in ('bigint', 'integer') -%}
    {%- set whole = (number ~ ' = trunc(' ~ number ~ ')') if is_integer else 'true' -%}
    case
        when jsonb_typeof({{ value }}) = 'number'
            then
                case
                    when
                        {{ number }} between {{ low }} and {{ high }}
                        and {{ whole }}
                        then cast({{ number }} as {{ type }})
                end
    end
{%- endmacro %}


{#-
    On Spark the lake stores JSON as text: a JSON number is a value `get_json_object` returns
    that is not quoted in the text (a JSON string "12" would read as 12). `numeric` (PostgreSQL's
    exact decimal of any scale) becomes decimal(38, 9) there, Spark's `numeric` being
    decimal(10, 0).
-#}
{% macro spark__json_number(json_column, key, type, low, high) -%}
    {%- set text = spark__json_text(json_column, key) -%}
    {%- set number = 'try_cast(' ~ text ~ ' as decimal(38, 9))' -%}
    {%- set is_integer = type in ('bigint', 'integer') -%}
    {%- set whole = (number ~ ' = floor(' ~ number ~ ')') if is_integer else 'true' -%}
    {%- set spark_type = 'decimal(38, 9)' if type == 'numeric' else type -%}
    case
        when
            {{ number }} between {{ low }} and {{ high }}
            and {{ whole }}
            and {{ json_column }} not rlike '"{{ key | replace('.', '[.]') }}"\\s*:\\s*"'
            then cast({{ number }} as {{ spark_type }})
    end
{%- endmacro %}
