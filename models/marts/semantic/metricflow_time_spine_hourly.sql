{#-
    One row per UTC hour, 2020 to 2039: the semantic layer's calendar at hour grain, so metrics
    such as `conversations` can be asked per hour (the grain of `conversations_hourly`).
-#}

with

hours as (

    {% if target.type == 'spark' %}
        -- the session time zone is UTC (profiles.yml)
        select
            explode(sequence(
                timestamp '2020-01-01 00:00:00',
                timestamp '2039-12-31 23:00:00',
                interval 1 hour
            )) as hour_start
    {% else %}
        select
            generate_series(
                timestamptz '2020-01-01 00:00:00+00',
                timestamptz '2039-12-31 23:00:00+00',
                interval '1 hour'
            ) as hour_start
    {% endif %}

),

final as (

    select hour_start as date_hour
    from hours

)

select * from final
