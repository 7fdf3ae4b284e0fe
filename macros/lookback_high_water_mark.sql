{#-
    The high-water mark of an incremental model, moved back by `lookback_hours`: a scalar
    subquery giving max(`column`) of `{{ this }}` minus the lookback, or -infinity when the
    table is empty (so a model first built on empty raw tables still picks up every row later).
    Usage, in an `is_incremental()` branch:
        where loaded_at >= {{ lookback_high_water_mark('last_loaded_at') }}
-#}
{% macro lookback_high_water_mark(column) -%}
    (
        select
            coalesce(
                max(high_water.{{ column }})
                - make_interval(hours => {{ var('lookback_hours') }}),
                '-infinity'::timestamptz
            )
        from {{ this }} as high_water
    )
{%- endmacro %}
