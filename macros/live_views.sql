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
