{#-
    Passes when the model's mapping in `shared_mart_mappings()` (macros/shared_marts.sql)
    names every column of its base mart (shown, coarsened, suppressed or withheld) and
    publishes exactly the model's own columns; each failing row is one column. The columns
    are those the YAML declares, which the marts' enforced contracts keep equal to the built
    tables.
    Usage (on a `*_shared` model):
        data_tests:
          - maps_every_base_column
-#}
{% test maps_every_base_column(model) %}

select *
from (
    {{ shared_mart_mapping_problems(model.identifier) }}
) as problems

{% endtest %}
