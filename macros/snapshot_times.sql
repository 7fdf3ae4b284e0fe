{#-
    Snapshot times with their time zone (`insights_history`'s `dbt_valid_from`, `dbt_valid_to`,
    `dbt_updated_at`): dbt-postgres records `now()` as `timestamp without time zone`, a wall
    clock in whatever time zone the build's session had, which a reader cannot tell apart.
    This project's `postgres__` implementation comes first (the `dispatch` in
    dbt_project.yml), so every snapshot records `timestamptz`.
-#}
{% macro postgres__snapshot_get_time() -%}
    now()
{%- endmacro %}


{#-
    Pre-hook of a snapshot: a table recorded before the change above holds the three times
    without a time zone; they are converted in place, read in the session's time zone, the one
    they were written in (the columns are typed `timestamptz` from then on). Nothing once done,
    nothing before the first build, nothing on Spark (no snapshots there).
-#}
{% macro snapshot_times_with_time_zone() -%}
    {{ return(adapter.dispatch('snapshot_times_with_time_zone', 'agent_analytics')()) }}
{%- endmacro %}


{% macro default__snapshot_times_with_time_zone() -%}
    do $upgrade$
    begin
        if exists (
            select from information_schema.columns
            where
                table_schema = '{{ this.schema }}'
                and table_name = '{{ this.identifier }}'
                and column_name = 'dbt_valid_from'
                and data_type = 'timestamp without time zone'
        ) then
            alter table {{ this }}
            alter column dbt_updated_at type timestamptz,
            alter column dbt_valid_from type timestamptz,
            alter column dbt_valid_to type timestamptz;
        end if;
    end
    $upgrade$
{%- endmacro %}


{% macro spark__snapshot_times_with_time_zone() -%}
    select 1
{%- endmacro %}
