{#-
    Access control on Apache Spark. PostgreSQL's grants and row-level security
    (macros/security.sql) have no Spark equivalent without a catalog that enforces them:
    tables built by `dbt build --target spark` get no grants and no row filters here. Tenant
    isolation on Spark is the platform's (Unity Catalog row filters, or one view per tenant);
    see docs/spark.md.
-#}
{% macro spark__apply_bi_access() -%}
    select 1
{%- endmacro %}


{% macro spark__grant_marts_usage() -%}
    select 1
{%- endmacro %}


{#- The access checks (macros/access_checks.sql) are PostgreSQL's: Spark has no grants. -#}
{% macro spark__check_build_inputs() -%}
    select 1
{%- endmacro %}


{% macro spark__check_reader_access() -%}
    select 1
{%- endmacro %}
