{#-
    One row per UTC day, 2020 to 2039: the calendar MetricFlow joins metrics to (the time
    spine the semantic layer needs for day, week, month and year grains). Not a business table.
-#}

with

days as (

    {% if target.type == 'spark' %}
        select explode(sequence(date '2020-01-01', date '2039-12-31', interval 1 day)) as day_start
    {% else %}
        select generate_series(date '2020-01-01', date '2039-12-31', interval '1 day') as day_start
    {% endif %}

),

final as (

    select cast(day_start as date) as date_day
    from days

)

select * from final
