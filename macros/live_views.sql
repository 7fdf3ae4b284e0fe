{#-
    Post-hook of `operational_health_live` (PostgreSQL): the view reads with its owner's
    rights (`security_invoker` off, which the access hook turned on), because it reads the
    live rollup in raw, which no BI reader may read. That is safe only because its readers
    see every row (meta.bi_access: bi_operator, and the alerts service's role `alerts`): the
    build fails if a row-limited reader (tenant, publisher, trusted application) is ever
    configured for it.
-#}
{% macro live_view_owner_rights() -%}
    {%- if target.type != 'postgres' -%}
        select 1
    {%- else -%}
        {%- set readers = ((config.get('meta') or {}).get('bi_access') or {}).get('readers', []) -%}
        {%- if readers | reject('in', ['bi_operator', 'alerts']) | list -%}
            {{ exceptions.raise_compiler_error(
                this ~ ": a live view reads raw with its owner's rights; only bi_operator and"
                ~ " alerts (readers of every row) may read it, not " ~ readers | join(', ')) }}
        {%- endif -%}
        alter view {{ this }} set (security_invoker = off)
    {%- endif -%}
{%- endmacro %}


{#-
    Start of the 1-minute bucket of the live rollup holding `timestamp`: the loader's own
    function (loader/ingest/migrations/0015_marketplace_live_rollup.sql), so the view and the
    triggers bucket alike. PostgreSQL only, as the rollup.
-#}
{% macro live_bucket(timestamp) -%}
    raw.marketplace_live_bucket({{ timestamp }})
{%- endmacro %}


{#-
    Start of the 10-minute bucket of the live rollup holding `timestamp`: the loader's own
    function (loader/ingest/migrations/0016_marketplace_live_rollup_ten_minutes.sql), whose
    rows sum the rollup's ten 1-minute buckets. PostgreSQL only, as the rollup.
-#}
{% macro live_ten_minute_bucket(timestamp) -%}
    raw.marketplace_live_ten_minute_bucket({{ timestamp }})
{%- endmacro %}


{#-
    Start of the live window of `minutes` ending at `window_end_at`: the 1-minute bucket
    holding its start, so the window is whole buckets (`window_start_at` of
    `operational_health_live`).
-#}
{% macro live_window_start(window_end_at, minutes) -%}
    {{ live_bucket(minus_minutes(window_end_at, minutes)) }}
{%- endmacro %}


{#-
    The interior of that window, [start, end): its 10-minute buckets that start in it and have
    ended (the rollup has every minute of them, and none after `window_end_at`). A window reads
    the rows of the interior's 10-minute buckets and the 1-minute rows around it (from the
    window's start, and from the interior's end up to `window_end_at`): each minute once.
    The first whole 10-minute bucket is that of the start plus 9 minutes, the start being a
    1-minute bucket's.
-#}
{% macro live_window_interior_start(window_end_at, minutes) -%}
    {%- set start_at = live_window_start(window_end_at, minutes) %}
    {{ live_ten_minute_bucket(start_at ~ " + interval '9 minutes'") }}
{%- endmacro %}

{% macro live_window_interior_end(window_end_at) -%}
    {{ live_ten_minute_bucket(window_end_at) }}
{%- endmacro %}
