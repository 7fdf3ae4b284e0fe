{#-
    dbt's `relationships` test on PostgreSQL, for the cadences that test only the rows they
    touched (macros/test_window.sql). dbt's own joins the child to the whole parent: with a
    windowed child of a few thousand rows, PostgreSQL still hashes every parent row (all of
    staging: 0.3 s at 1 million events, seconds at 10 million, growing with history). Here
    each child row probes the parent's index instead (`offset 0` keeps the subquery
    correlated, so the planner cannot turn it back into that join), and the test's cost
    follows the window. Other builds test every child row: dbt's join is the right plan
    there, and is kept.
-#}
{% macro postgres__test_relationships(model, column_name, to, field) %}
    {%- if is_windowed_test_cadence() %}

        with child as (
            select {{ column_name }} as from_field
            from {{ model }}
            where {{ column_name }} is not null
        )

        select child.from_field
        from child
        where not exists (
            select from {{ to }} as parent
            where parent.{{ field }} = child.from_field
            offset 0
        )

    {%- else %}
        {{ dbt.default__test_relationships(model, column_name, to, field) }}
    {%- endif %}
{% endmacro %}
