{#-
    The incremental mechanism of the aggregate marts (one row per publisher-day, hour,
    tenant-month...), written once. Such a mart keeps, on each row, `last_loaded_at`: the
    newest `loaded_at` of the rows behind it. A build recomputes the grains (the mart's key,
    e.g. publisher and day) of the upstream rows loaded since the mart's high-water mark minus
    `lookback_hours` (`loaded_since_built`), replacing those rows whole (`delete+insert` on the
    key): a day that has passed is final, except for late events, which land in this window.
    The staging and fact models that append rows use `where_not_built_yet`
    (macros/lookback_high_water_mark.sql) on the same high-water mark.
-#}

{#-
    The condition on an upstream row (alias `relation_alias`, load time `loaded_column`)
    that it was loaded since `this` mart's high-water mark (`last_loaded_at`) minus the
    lookback: its grain must be recomputed. Usage, in an `is_incremental()` branch:
        where {{ loaded_since_built('invocations') }}
-#}
{% macro loaded_since_built(relation_alias, loaded_column='loaded_at') -%}
    {{ relation_alias }}.{{ loaded_column }} >= {{ lookback_high_water_mark('last_loaded_at') }}
{%- endmacro %}


{#-
    Pre-hook of an incremental aggregate mart whose rows are dated by `date_column`: deletes
    the rows a build cannot update in place, so that they are rebuilt (or stay away) as a
    full refresh would have them:
    - rows after the build's date (`as_of` moved back): they would not exist;
    - every row, after a purge this mart has not seen (macros/retention.sql): a purge can
      move a grain's first day later, leaving rows a full refresh would not have. A purge is
      rare (the retention job); the build after it costs a full build.
    `as_of_date` is a SQL date expression (none: no upper bound).
-#}
{% macro delete_rows_to_rebuild(date_column, as_of_date=none) -%}
    {%- set cutoff = unseen_purge_cutoff('last_loaded_at') -%}
    {%- if cutoff is not none %}
        delete from {{ this }}
    {%- elif as_of_date is not none and is_incremental() %}
        delete from {{ this }} as built
        where built.{{ date_column }} > {{ as_of_date }}
    {%- else %}
        select 1
    {%- endif %}
{%- endmacro %}


{#-
    True when an incremental aggregate model updates its table in place: it exists and no purge
    is unseen. After a purge the pre-hook (`delete_rows_to_rebuild`) empties the table and the
    model takes its full-build branch. Usage: `{% if is_incremental_update() %}`.
-#}
{% macro is_incremental_update() -%}
    {{ return(is_incremental() and unseen_purge_cutoff('last_loaded_at') is none) }}
{%- endmacro %}
