{#-
    Access control applied by dbt, so that a rebuild never loses it.

    dbt recreates a table on every run, and a new table has no grants and no policies: the
    post-hook `apply_bi_access()` (set for every mart in dbt_project.yml) runs inside the
    transaction that swaps the new table in, so no reader ever sees a mart without its
    grants and row-level security. It reads the model's `meta.bi_access`:

        bi_access:
          readers: [bi_operator, bi_tenant]   # role suffixes granted select (or `alerts`)
          tenant_column: tenant_id            # RLS for bi_tenant on this column
          publisher_column: publisher_id      # RLS for bi_publisher on this column

    Role names are `role_prefix` + suffix (the roles `agent-loader roles` creates); the var
    defaults to the environment variable AGENT_ANALYTICS_ROLE_PREFIX, which the loader reads
    too, else `aa_`. A table any reader but the operator reads gets row-level security:

    - operator and the alerts service: `using (true)`;
    - tenant / publisher: the row's tenant (publisher) is one granted to the connected login
      in `access.reader_grants` (`agent-loader grant-tenant` / `grant-publisher`), keyed on
      the OID of `session_user` (which `set role`, `reset` and `set app.*` do not change; a
      login dropped and created again, or renamed into the name, has another OID) (no security
      definer function involved: the reader reads its own grants under that table's policy);
    - trusted application (`bi_trusted_app`, granted wherever the tenant or publisher role
      is): the row's tenant (publisher) equals the session setting `app.tenant_id`
      (`app.publisher_id`); unset or empty: no rows.

    The table owner (the role that runs dbt) is not subject to RLS, so builds and tests see
    every row; readers never own a mart and have no BYPASSRLS. Planner statistics are
    switched off (`set statistics 0`) on every column of such a table, so `explain` cannot
    estimate other tenants' values from the column statistics. A view gets
    `security_invoker`, so the policies of the tables under it apply to the reader.

    Fails the build (closed, not open) when a tenant or publisher reader is configured
    without the column to filter on. Every statement is idempotent (incremental tables and
    snapshots are not recreated), and roles that do not exist are skipped: a build before
    `agent-loader roles` grants nobody anything (a build after it with another prefix is
    refused on start: macros/access_checks.sql). The on-run-end check of the same file
    fails the build when a mart carries a grant this hook did not make.
-#}

{#- The role prefix: the var, else AGENT_ANALYTICS_ROLE_PREFIX (the loader's), else aa_. -#}
{% macro role_prefix() -%}
    {{ return(var('role_prefix', env_var('AGENT_ANALYTICS_ROLE_PREFIX', 'aa_'))) }}
{%- endmacro %}


{% macro bi_role(suffix) -%}
    {{ role_prefix() ~ suffix }}
{%- endmacro %}


{#-
    The reader role names that exist on the server, of the five: the four BI readers and the
    alerts service (`alerts`, which reads the marts its rules need, every row).
-#}
{% macro existing_bi_roles() -%}
    {%- set wanted = [
        bi_role('bi_operator'),
        bi_role('bi_publisher'),
        bi_role('bi_tenant'),
        bi_role('bi_trusted_app'),
        bi_role('alerts'),
    ] -%}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set found = run_query(
        "select rolname from pg_roles where rolname in ('" ~ wanted | join("', '") ~ "')"
    ) -%}
    {{ return(found.columns[0].values() | list) }}
{%- endmacro %}


{#- The session setting as text, null when unset or empty (trusted application mode only). -#}
{% macro session_setting(name) -%}
    nullif(current_setting('{{ name }}', true), '')
{%- endmacro %}


{#-
    The ids of a scope ('tenant' or 'publisher') granted to the connected login, read by
    `own_rows` below.
-#}
{#-
    A tenant or publisher reader's policy: the row's key is one granted to the login.

    Written twice on purpose, each for one kind of scan:
    - `key = any(array(grants))` becomes the index condition, so an index scan reads only
      the reader's own entries (every index of such a table leads with the key), and its
      init plan runs at the start of every such scan;
    - `array(grants) @> array[key]` costs what a reader's own `=` or `<` costs, and
      PostgreSQL orders quals of equal cost as written, the policy's first: in a sequential
      scan it is checked on every row before the reader's conditions, so its init plan runs
      on the first row whatever the reader asks. With `= any` alone (costlier, so checked
      after a reader's leakproof `=`), the grants sub-select ran only when some row of any
      tenant passed the reader's conditions, and "never executed" in `explain analyze`
      told whether such a row existed (docs/security.md, "What a plan and the catalog
      show", has what a reader's cost-free condition, `is null` or a boolean column, can
      still tell).
-#}
{% macro own_rows(key_column, scope) -%}
    array({{ granted_ids(scope) }}) @> array[{{ key_column }}]
    and {{ key_column }} = any(array({{ granted_ids(scope) }}))
{%- endmacro %}


{% macro granted_ids(scope) -%}
    select reader_grants.subject_id
    from access.reader_grants as reader_grants
    where
        reader_grants.role_oid = (
            select pg_roles.oid
            from pg_catalog.pg_roles as pg_roles
            where pg_roles.rolname = session_user
        )
        and reader_grants.scope = '{{ scope }}'
{%- endmacro %}


{#-
    The column a tenant or publisher reader's policy filters this model on (the tenant
    column when a tenant reads it, else the publisher column when a publisher does), or none.
    Every index of such a table leads with it (docs/security.md, "What a plan shows"): a
    reader's plan then reaches only index entries of its own rows.
-#}
{% macro reader_key_column() -%}
    {#- config.get: not in a linter's templating, where nothing is built -#}
    {%- if config.get is not defined -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set access = (config.get('meta') or {}).get('bi_access') or {} -%}
    {%- set readers = access.get('readers', []) -%}
    {%- if 'bi_tenant' in readers and access.get('tenant_column') -%}
        {{ return(access.get('tenant_column')) }}
    {%- elif 'bi_publisher' in readers and access.get('publisher_column') -%}
        {{ return(access.get('publisher_column')) }}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro %}


{% macro apply_bi_access() -%}
    {{ return(adapter.dispatch('apply_bi_access', 'agent_analytics')()) }}
{%- endmacro %}


{#-
    The reader suffixes the hook grants select to for a `meta.bi_access`: the configured
    ones, plus `bi_trusted_app` wherever a tenant or publisher reader is, limited to the
    roles in `existing` (all of them when `existing` is none). The on-run-end check
    compares each mart's grants with the same list.
-#}
{% macro bi_access_readers(access, existing) -%}
    {%- set wanted = (access.get('readers') or []) | list -%}
    {%- if ('bi_tenant' in wanted or 'bi_publisher' in wanted)
        and 'bi_trusted_app' not in wanted -%}
        {%- do wanted.append('bi_trusted_app') -%}
    {%- endif -%}
    {%- set readers = [] -%}
    {%- for suffix in wanted -%}
        {%- if existing is none or bi_role(suffix) in existing -%}
            {%- do readers.append(suffix) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(readers) }}
{%- endmacro %}


{% macro default__apply_bi_access() -%}
    {%- set access = (config.get('meta') or {}).get('bi_access') or {} -%}
    {%- set existing = existing_bi_roles() -%}
    {%- set tenant_column = access.get('tenant_column') -%}
    {%- set publisher_column = access.get('publisher_column') -%}
    {%- set configured = access.get('readers', []) -%}
    {%- if 'bi_tenant' in configured and not tenant_column -%}
        {{ exceptions.raise_compiler_error(
            this ~ ": meta.bi_access gives bi_tenant but no tenant_column to filter on") }}
    {%- endif -%}
    {%- if 'bi_publisher' in configured and not publisher_column -%}
        {{ exceptions.raise_compiler_error(
            this ~ ": meta.bi_access gives bi_publisher but no publisher_column to filter on") }}
    {%- endif -%}
    {%- set readers = bi_access_readers(access, existing) -%}
    {%- set wanted = bi_access_readers(access, none) -%}
    {%- set is_view = config.get('materialized') == 'view' -%}
    {%- set tenant_rows = tenant_column and 'bi_tenant' in wanted -%}
    {%- set publisher_rows = publisher_column and 'bi_publisher' in wanted -%}
    {%- if (tenant_rows or publisher_rows) and readers
        and not load_relation(api.Relation.create(
            database=target.database, schema='access', identifier='reader_grants')) -%}
        {{ exceptions.raise_compiler_error(
            "table access.reader_grants is missing: run `agent-loader roles` with the same"
            ~ " prefix before dbt build") }}
    {%- endif %}

    {%- if existing %}
        revoke all on {{ this }} from {{ existing | join(', ') }};
    {%- endif %}
    {%- for suffix in readers %}
        grant select on {{ this }} to {{ bi_role(suffix) }};
    {%- endfor %}

    {%- if is_view %}
        alter view {{ this }} set (security_invoker = on);
    {%- endif %}

    {% if not is_view and (tenant_column or publisher_column) -%}
        alter table {{ this }} enable row level security;
        drop policy if exists bi_operator_all_rows on {{ this }};
        drop policy if exists alerts_all_rows on {{ this }};
        drop policy if exists bi_tenant_own_rows on {{ this }};
        drop policy if exists bi_publisher_own_rows on {{ this }};
        drop policy if exists bi_trusted_app_tenant_rows on {{ this }};
        drop policy if exists bi_trusted_app_publisher_rows on {{ this }};
        {%- if 'bi_operator' in readers %}
            create policy bi_operator_all_rows on {{ this }}
                for select to {{ bi_role('bi_operator') }}
                using (true);
        {%- endif %}
        {%- if 'alerts' in readers %}
            create policy alerts_all_rows on {{ this }}
                for select to {{ bi_role('alerts') }}
                using (true);
        {%- endif %}
        {%- if tenant_rows and 'bi_tenant' in readers %}
            create policy bi_tenant_own_rows on {{ this }}
                for select to {{ bi_role('bi_tenant') }}
                using ({{ own_rows(tenant_column, 'tenant') }});
        {%- endif %}
        {%- if publisher_rows and 'bi_publisher' in readers %}
            create policy bi_publisher_own_rows on {{ this }}
                for select to {{ bi_role('bi_publisher') }}
                using ({{ own_rows(publisher_column, 'publisher') }});
        {%- endif %}
        {%- if tenant_rows and 'bi_trusted_app' in readers %}
            create policy bi_trusted_app_tenant_rows on {{ this }}
                for select to {{ bi_role('bi_trusted_app') }}
                using ({{ tenant_column }} = {{ session_setting('app.tenant_id') }});
        {%- endif %}
        {%- if publisher_rows and 'bi_trusted_app' in readers %}
            create policy bi_trusted_app_publisher_rows on {{ this }}
                for select to {{ bi_role('bi_trusted_app') }}
                using ({{ publisher_column }} = {{ session_setting('app.publisher_id') }});
        {%- endif %}
    {%- endif %}

    {%- if not is_view and (tenant_rows or publisher_rows) %}
        {%- for column in adapter.get_columns_in_relation(this) %}
            alter table {{ this }} alter column {{ adapter.quote(column.name) }} set statistics 0;
        {%- endfor %}
    {%- endif %}
    select 1
{%- endmacro %}


{#- on-run-end: the BI roles may look into schema marts (and nowhere else dbt builds). -#}
{% macro grant_marts_usage() -%}
    {{ return(adapter.dispatch('grant_marts_usage', 'agent_analytics')()) }}
{%- endmacro %}


{% macro default__grant_marts_usage() -%}
    {%- set existing = existing_bi_roles() -%}
    {%- if existing and adapter.check_schema_exists(target.database, 'marts') %}
        grant usage on schema marts to {{ existing | join(', ') }};
    {%- endif %}
    select 1
{%- endmacro %}


{#-
    What a publisher may see (the `*_shared` marts; docs/security.md has the reasoning):

    1. Threshold: a cell computed over fewer than `min_tenants_per_aggregate` tenants
       (default 5) is null.
    2. Complementary suppression (publisher_daily_shared): when the in-window days a group
       of metrics hides by the threshold hold, together, between one and
       `min_tenants_per_aggregate - 1` distinct tenants, the group is hidden on every
       in-window day, so the window total minus the visible days never isolates a small
       group of tenants.
    3. Coarsening: every published count and sum is rounded to a multiple of a step, and every
       average, rate and percentile to its own step (vars `publish_*_step`), so any
       difference of published figures (between cells, or between two builds) is a whole
       number of steps, never one tenant's exact contribution.

    Which column of which mart gets which: one mapping per mart, macros/shared_marts.sql.
-#}


{#- The expression when the condition holds, else null. -#}
{% macro suppress_unless(expression, condition) -%}
    case when {{ condition }} then {{ expression }} end
{%- endmacro %}


{#- Rounded to the nearest multiple of the var `step_var` (numeric; dbt_project.yml). -#}
{% macro coarsen(expression, step_var) -%}
    round(cast({{ expression }} as {{ numeric_type() }}) / {{ var(step_var) }})
    * {{ var(step_var) }}
{%- endmacro %}


{#- A count or tenant count rounded to `publish_count_step`, as bigint. -#}
{% macro coarsen_count(expression) -%}
    cast({{ coarsen(expression, 'publish_count_step') }} as bigint)
{%- endmacro %}


{#-
    Post-hook of the seeds the alerts service reads (`alert_rules`): its role (`alerts`, made
    by `agent-loader roles`) may read the seed, and nothing else in schema seeds. Nothing
    when the role does not exist (a build before `agent-loader roles`).
-#}
{% macro grant_to_alerts_service() -%}
    {%- if target.type == 'postgres' and bi_role('alerts') in existing_bi_roles() %}
        grant usage on schema {{ this.schema }} to {{ bi_role('alerts') }};
        grant select on {{ this }} to {{ bi_role('alerts') }};
    {%- endif %}
    select 1
{%- endmacro %}
