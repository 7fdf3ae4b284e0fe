{#-
    Reading OpenTelemetry attributes in staging (`stg_otel__genai_operations`). `raw.spans`
    keeps each attribute with its OTLP type in JSON; dialects name the same fact differently,
    so each reader takes a list of attribute names, the first present wins.
-#}

{#-
    The first non-empty text among `keys`, looked up in each of `columns` in turn (the span's
    `attributes`, then its `resource_attributes`): every key on the span before any key on the
    resource. Null when none is present.
-#}
{% macro otel_text(keys, columns=['attributes']) -%}
    {%- set reads = [] -%}
    {%- for column in columns -%}
        {%- for key in keys -%}
            {%- do reads.append("nullif(" ~ json_text(column, key) ~ ", '')") -%}
        {%- endfor -%}
    {%- endfor -%}
    coalesce({{ reads | join(', ') }})
{%- endmacro %}


{#-
    The first of `keys` on the span that holds a JSON number in [`low`, `high`] (whole for an
    integer `type`); null when none does (json_number: a value of another type is not read).
-#}
{% macro otel_number(keys, type='bigint', low=0, high=1e12) -%}
    {%- set reads = [] -%}
    {%- for key in keys -%}
        {%- do reads.append(json_number('attributes', key, type, low, high)) -%}
    {%- endfor -%}
    coalesce({{ reads | join(', ') }})
{%- endmacro %}
