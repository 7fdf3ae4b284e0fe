{#-
    Post-hook of `operational_health_live` (PostgreSQL): the view reads with its owner's
    rights (`security_invoker` off, which the access hook turned on), because it reads the
    raw tail, which no BI reader may read. That is safe only because its readers see every
    row (meta.bi_access: bi_operator alone, as `operational_health`): the build fails if a
    row-limited reader (tenant, publisher, trusted application) is ever configured for it.
-#}
{% macro live_view_owner_rights() -%}
    {%- if target.type != 'postgres' -%}
        select 1
    {%- else -%}
        {%- set readers = ((config.get('meta') or {}).get('bi_access') or {}).get('readers', []) -%}
        {%- if readers | reject('equalto', 'bi_operator') | list -%}
            {{ exceptions.raise_compiler_error(
                this ~ ": a live view reads raw with its owner's rights; only bi_operator may"
                ~ " read it, not " ~ readers | join(', ')) }}
        {%- endif -%}
        alter view {{ this }} set (security_invoker = off)
    {%- endif -%}
{%- endmacro %}


{#-
    Start of the 10-second bucket of `raw.marketplace_tail_rollup` that holds `timestamp`: the
    function the loader's triggers bucket with (loader/ingest/migrations/0015), so both read
    the same buckets. Only PostgreSQL has the rollup (the Spark lake's is empty).
-#}
{% macro tail_bucket(timestamp) -%}
    {{ return(adapter.dispatch('tail_bucket', 'agent_analytics')(timestamp)) }}
{%- endmacro %}

{% macro default__tail_bucket(timestamp) -%}
    raw.marketplace_tail_bucket({{ timestamp }})
{%- endmacro %}

{% macro spark__tail_bucket(timestamp) -%}
    timestamp_seconds(floor(unix_micros({{ timestamp }}) / 10000000) * 10)
{%- endmacro %}


{#- The rollup's bucket, in seconds (the interval `tail_bucket` rounds down to). -#}
{% macro tail_bucket_seconds() -%}
    10
{%- endmacro %}


{#-
    The live view's edges (PostgreSQL): `first` the first whole bucket of a window starting
    at `window_start_at`, `partial` the bucket holding its end (read from raw, with the
    partial bucket at its start); `tail_edges` the condition on `column` (finished_at) that
    keeps only those partial buckets' invocations, for every window in `windows`, as ranges
    the BRIN index on event_ts reads as such. Without the rollup (the Spark lake) every
    bucket is partial: the first whole bucket and the partial one are the window's end, and
    every invocation is read from raw.
-#}
{% macro tail_first_whole_bucket(window_start_at, window_end_at) -%}
    {%- set implementation = adapter.dispatch('tail_first_whole_bucket', 'agent_analytics') -%}
    {{ return(implementation(window_start_at, window_end_at)) }}
{%- endmacro %}

{% macro default__tail_first_whole_bucket(window_start_at, window_end_at) -%}
    {{ tail_bucket(window_start_at) }} + make_interval(secs => {{ tail_bucket_seconds() }})
{%- endmacro %}

{% macro spark__tail_first_whole_bucket(window_start_at, window_end_at) -%}
    {{ window_end_at }}
{%- endmacro %}


{% macro tail_partial_bucket(window_end_at) -%}
    {{ return(adapter.dispatch('tail_partial_bucket', 'agent_analytics')(window_end_at)) }}
{%- endmacro %}

{% macro default__tail_partial_bucket(window_end_at) -%}
    {{ tail_bucket(window_end_at) }}
{%- endmacro %}

{% macro spark__tail_partial_bucket(window_end_at) -%}
    {{ window_end_at }}
{%- endmacro %}


{% macro tail_edges(column, windows) -%}
    {{ return(adapter.dispatch('tail_edges', 'agent_analytics')(column, windows)) }}
{%- endmacro %}

{% macro default__tail_edges(column, windows) -%}
    {%- set edges = [] -%}
    {%- for minutes in windows -%}
        {%- set start = minus_minutes('now()', minutes) -%}
        {%- do edges.append(
            '(' ~ column ~ ' > ' ~ start ~ ' and ' ~ column ~ ' < '
            ~ tail_first_whole_bucket(start, 'now()') ~ ')'
        ) -%}
    {%- endfor -%}
    {%- do edges.append(column ~ ' >= ' ~ tail_partial_bucket('now()')) -%}
    {{ edges | join('\n        or ') }}
{%- endmacro %}

{% macro spark__tail_edges(column, windows) -%}
    true
{%- endmacro %}


{#-
    The condition on `column` (a rollup bucket's start) that keeps the whole buckets of the
    live window of `minutes` ending now: from the one after the bucket holding its start to
    the one before the bucket holding now.
-#}
{% macro tail_whole_buckets(column, minutes) -%}
    {%- set start = minus_minutes('now()', minutes) -%}
    {{ column }} >= {{ tail_first_whole_bucket(start, 'now()') }}
    and {{ column }} < {{ tail_partial_bucket('now()') }}
{%- endmacro %}


{#-
    One value per window from columns named `prefix` + `_` + minutes, for the row's
    `window_column`: `case window_column when 5 then prefix_5 ... end`.
-#}
{% macro by_window(window_column, prefix, windows) -%}
    {%- set cases = [] -%}
    {%- for minutes in windows -%}
        {%- do cases.append('when ' ~ minutes ~ ' then ' ~ prefix ~ '_' ~ minutes) -%}
    {%- endfor -%}
    case {{ window_column }} {{ cases | join(' ') }} end
{%- endmacro %}
