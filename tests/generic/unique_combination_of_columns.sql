{#-
    Passes when no two rows share the same values in all of `combination_of_columns`:
    the grain test for models keyed by more than one column.
    Usage:
        data_tests:
          - unique_combination_of_columns:
              arguments:
                combination_of_columns: [publisher_id, tool_name]
-#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

select
    {{ combination_of_columns | join(', ') }},
    count(*) as occurrences
from {{ model }}
group by {{ combination_of_columns | join(', ') }}
having count(*) > 1

{% endtest %}
