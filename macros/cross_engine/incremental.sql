{#-
    Incremental models on Apache Spark with Parquet tables.

    The PostgreSQL models update incrementally with `delete+insert` (replace the keys a run
    touched). Plain Parquet tables cannot delete rows (that needs Delta or Iceberg, whose
    runtimes are JVM packages fetched from Maven at run time), so on Spark every incremental
    model is rebuilt whole, as a table: `is_incremental()` is false there, and the
    `incremental` materialization builds a table. The answers are those of a
    `--full-refresh`, which is what the incremental PostgreSQL build equals. The cluster plan
    (docs/spark.md) replaces this with partition overwrite or Delta `merge`.
-#}
{% macro is_incremental() -%}
    {%- if target.type == 'spark' -%}
        {{ return(false) }}
    {%- endif -%}
    {{ return(dbt.is_incremental()) }}
{%- endmacro %}


{% materialization incremental, adapter='spark' -%}
    {{ return(materialization_table_spark()) }}
{%- endmaterialization %}


{#-
    Snapshots on Spark need a table format that can update rows (Delta or Hudi); with plain
    Parquet `insights_history` is not built there, and says so.
-#}
{% materialization snapshot, adapter='spark' -%}
    {{ log(
        "skipped " ~ this ~ ": snapshots on Spark need Delta or Hudi (the lake is plain"
        ~ " Parquet); the history is kept on PostgreSQL. See docs/spark.md.", info=true
    ) }}
    {%- call statement('main') -%}
        select 1
    {%- endcall -%}
    {{ return({'relations': []}) }}
{%- endmaterialization %}
