{#-
    Passes when every non-null value of the column lies within [min_value, max_value]
    (either bound may be left out; `inclusive: false` makes both bounds strict).
    Usage:
        - accepted_range:
            arguments: {min_value: 0, max_value: 1}
-#}
{% test accepted_range(model, column_name, min_value=none, max_value=none, inclusive=true) %}

{%- set lower = '>=' if inclusive else '>' -%}
{%- set upper = '<=' if inclusive else '<' -%}
{%- set low = min_value if min_value is not none else 'null' -%}
{%- set high = max_value if max_value is not none else 'null' %}

select {{ column_name }}
from {{ model }}
where
    {{ column_name }} is not null
    and (
        ({{ low }} is not null and not {{ column_name }} {{ lower }} {{ low }})
        or ({{ high }} is not null and not {{ column_name }} {{ upper }} {{ high }})
    )

{% endtest %}
