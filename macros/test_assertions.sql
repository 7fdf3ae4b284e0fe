{#-
    The checks the singular tests (tests/dbt) share, each written once.
-#}

{#-
    Every event of a measure counted once in each model that totals it: one row per measure
    and model, `staged_total` (the measure over the staged events, `staged`: a scalar SQL
    query, run once) beside `counted_total` (the sum of the model's column, 0 without rows).
    `measures` maps a measure's name to {'staged': ..., 'counted_in': {CTE: column}}; the
    test returns the rows where the two totals differ.
-#}
{% macro staged_and_counted_totals(measures) -%}
    {%- set selects = [] -%}
    {%- for measure, totals in measures.items() -%}
        {%- set counted = [] -%}
        {%- for relation, column in totals.counted_in.items() -%}
            {%- do counted.append(
                "('" ~ relation ~ "', (select coalesce(sum(" ~ column ~ "), 0) from "
                ~ relation ~ "))"
            ) -%}
        {%- endfor -%}
        {%- do selects.append(
            "select\n        '" ~ measure ~ "' as measure,\n        counted.counted_in,"
            ~ "\n        staged.staged_total,\n        counted.counted_total"
            ~ "\n    from (" ~ totals.staged ~ ") as staged (staged_total)"
            ~ "\n    cross join (values\n        " ~ counted | join(",\n        ")
            ~ "\n    ) as counted (counted_in, counted_total)"
        ) -%}
    {%- endfor -%}
    {{ selects | join('\n\n    union all\n\n    ') }}
{%- endmacro %}


{#-
    Whether a USD total and the sum of `summed_rows` USD values it should equal differ by
    more than their rounding: each is stored at 6 decimals, so each of the summed values and
    the total may be off by half a micro-dollar.
-#}
{% macro usd_differs_beyond_rounding(total, summed, summed_rows) -%}
    abs({{ total }} - {{ summed }}) > 0.0000005 * ({{ summed_rows }} + 1)
{%- endmacro %}
