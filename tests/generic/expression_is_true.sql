{#-
    Passes when `expression` holds on every row (optionally only where `condition` holds).
    Usage (on a model):
        data_tests:
          - expression_is_true:
              arguments:
                expression: "ended_at >= started_at"
-#}
{% test expression_is_true(model, expression, condition='true') %}

select *
from {{ model }}
where
    ({{ condition }})
    and not coalesce(({{ expression }}), false)

{% endtest %}
