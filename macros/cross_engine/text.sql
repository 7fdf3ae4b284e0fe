{#-
    Text types and number formatting. Spark has no `text` type (`string`), no `to_char` fill
    mode and no `trim_scale`; these give the same strings on both engines.
-#}

{% macro text_type() -%}
    {{ return(adapter.dispatch('text_type', 'agent_analytics')()) }}
{%- endmacro %}

{% macro default__text_type() -%}
    text
{%- endmacro %}

{% macro spark__text_type() -%}
    string
{%- endmacro %}


{#-
    `value` as text in the PostgreSQL `to_char` format `format`: 'FM999999990.0' (one
    decimal), 'FM999999999990' (a whole number) or 'FM990.09' (two decimals, a trailing zero
    dropped from the second).
-#}
{% macro number_text(value, format) -%}
    {{ return(adapter.dispatch('number_text', 'agent_analytics')(value, format)) }}
{%- endmacro %}

{% macro default__number_text(value, format) -%}
    to_char({{ value }}, '{{ format }}')
{%- endmacro %}

{% macro spark__number_text(value, format) -%}
    {%- if format == 'FM999999990.0' -%}
        cast(cast(round({{ value }}, 1) as decimal(38, 1)) as string)
    {%- elif format == 'FM999999999990' -%}
        cast(cast(round({{ value }}, 0) as decimal(38, 0)) as string)
    {%- elif format == 'FM990.09' -%}
        regexp_replace(
            cast(cast(round({{ value }}, 2) as decimal(38, 2)) as string),
            '([0-9][.][0-9])0$', '$1'
        )
    {%- else -%}
        {{ exceptions.raise_compiler_error('number_text: no Spark form for ' ~ format) }}
    {%- endif -%}
{%- endmacro %}


{#- A decimal as text without trailing zeros after the point (PostgreSQL's `trim_scale`). -#}
{% macro trimmed_number_text(value) -%}
    {{ return(adapter.dispatch('trimmed_number_text', 'agent_analytics')(value)) }}
{%- endmacro %}

{% macro default__trimmed_number_text(value) -%}
    cast(trim_scale({{ value }}) as text)
{%- endmacro %}

{% macro spark__trimmed_number_text(value) -%}
    regexp_replace(
        regexp_replace(cast(cast({{ value }} as decimal(38, 9)) as string), '0+$', ''),
        '[.]$', ''
    )
{%- endmacro %}


{#-
    An exact decimal of any scale: PostgreSQL's `numeric`. Spark's `numeric` is
    decimal(10, 0), which would cut the fraction off: decimal(38, 9) there.
-#}
{% macro numeric_type() -%}
    {{ return(adapter.dispatch('numeric_type', 'agent_analytics')()) }}
{%- endmacro %}

{% macro default__numeric_type() -%}
    numeric
{%- endmacro %}

{% macro spark__numeric_type() -%}
    decimal(38, 9)
{%- endmacro %}


{#-
    Does `value` match the regular expression `pattern` (both SQL expressions), ignoring
    case? PostgreSQL's `~*`; on Spark a Java regular expression with the `(?i)` flag. The
    price table's patterns (seeds/model_prices.csv) are read the same by both.
-#}
{% macro matches_ignoring_case(value, pattern) -%}
    {{ return(adapter.dispatch('matches_ignoring_case', 'agent_analytics')(value, pattern)) }}
{%- endmacro %}

{% macro default__matches_ignoring_case(value, pattern) -%}
    {{ value }} ~* {{ pattern }}
{%- endmacro %}

{% macro spark__matches_ignoring_case(value, pattern) -%}
    {{ value }} rlike concat('(?i)', {{ pattern }})
{%- endmacro %}


{#-
    A per-token price times a token count. On Spark a bigint times decimal(38, 18) keeps only
    6 decimals (its precision rules cut the scale past 38 digits), which would round a call's
    cost; there the two are narrowed first (13 digits of tokens, 24 of price: the product
    keeps its 18 decimals). PostgreSQL's `numeric` is exact.
-#}
{% macro tokens_times_price(tokens, price) -%}
    {{ return(adapter.dispatch('tokens_times_price', 'agent_analytics')(tokens, price)) }}
{%- endmacro %}

{% macro default__tokens_times_price(tokens, price) -%}
    {{ tokens }} * {{ price }}
{%- endmacro %}

{% macro spark__tokens_times_price(tokens, price) -%}
    cast({{ tokens }} as decimal(13, 0)) * cast({{ price }} as decimal(24, 18))
{%- endmacro %}
