{#-
    A number read out of a jsonb value, cast to `type`; null when the value is not a JSON
    number, falls outside [`low`, `high`], or (for an integer type) is not whole.

    The loader's contract already quarantines such values (the same bounds: token counts and
    durations up to 10^12, costs up to 10^9); staging checks again, so that no row in raw,
    however it got there, can make a cast fail and stop `dbt build`.
-#}
{% macro json_number(value, type, low, high) -%}
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
