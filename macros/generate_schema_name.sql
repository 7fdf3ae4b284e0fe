{#-
    Models land in schemas named exactly as configured (`staging`, `intermediate`, `marts`),
    next to the loader's `raw`, instead of dbt's default `<target_schema>_<custom>`: BI tools
    and grants rely on these names.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
