{#-
    Access control applied by dbt, so that a rebuild never loses it.

    dbt recreates a table on every run, and a new table has no grants and no policies: the
    post-hook `apply_bi_access()` (set for every mart in dbt_project.yml) runs inside the
    transaction that swaps the new table in, so no reader ever sees a mart without its
    grants and row-level security. It reads the model's `meta.bi_access`:

        bi_access:
          readers: [bi_operator, bi_tenant]   # role suffixes granted select
          tenant_column: tenant_id            # RLS for bi_tenant on this column
          publisher_column: publisher_id      # RLS for bi_publisher on this column

    Role names are `var('role_prefix', 'aa_')` + suffix (the roles `agent-loader roles`
    creates). A table with a tenant or publisher column gets row-level security: the
    operator's policy is `using (true)`, the tenant's and publisher's compare the column with
    the session setting `app.tenant_id` / `app.publisher_id` (unset or empty: no rows). The
    table owner (the role that runs dbt) is not subject to RLS, so builds and tests see every
    row; BI roles never own a mart and have no BYPASSRLS. A view gets `security_invoker`, so
    the policies of the tables under it apply to the reader.

    Every statement is idempotent (incremental tables and snapshots are not recreated), and
    roles that do not exist are skipped: a build before `agent-loader roles` grants nobody
    anything, which is closed, not open.
-#}

{% macro bi_role(suffix) -%}
    {{ var('role_prefix', 'aa_') ~ suffix }}
{%- endmacro %}


{#- The BI role names that exist on the server, of the three. -#}
{% macro existing_bi_roles() -%}
    {%- set wanted = [bi_role('bi_operator'), bi_role('bi_publisher'), bi_role('bi_tenant')] -%}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set found = run_query(
        "select rolname from pg_roles where rolname in ('" ~ wanted | join("', '") ~ "')"
    ) -%}
    {{ return(found.columns[0].values() | list) }}
{%- endmacro %}


{#- The session setting as text, null when unset or empty. -#}
{% macro session_setting(name) -%}
    nullif(current_setting('{{ name }}', true), '')
{%- endmacro %}


{% macro apply_bi_access() -%}
    {%- set access = (config.get('meta') or {}).get('bi_access') or {} -%}
    {%- set existing = existing_bi_roles() -%}
    {%- set readers = [] -%}
    {%- for suffix in access.get('readers', []) -%}
        {%- if bi_role(suffix) in existing -%}
            {%- do readers.append(suffix) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set is_view = config.get('materialized') == 'view' -%}
    {%- set tenant_column = access.get('tenant_column') -%}
    {%- set publisher_column = access.get('publisher_column') -%}

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
        drop policy if exists bi_tenant_own_rows on {{ this }};
        drop policy if exists bi_publisher_own_rows on {{ this }};
        {%- if 'bi_operator' in readers %}
            create policy bi_operator_all_rows on {{ this }}
                for select to {{ bi_role('bi_operator') }}
                using (true);
        {%- endif %}
        {%- if tenant_column and 'bi_tenant' in readers %}
            create policy bi_tenant_own_rows on {{ this }}
                for select to {{ bi_role('bi_tenant') }}
                using ({{ tenant_column }} = {{ session_setting('app.tenant_id') }});
        {%- endif %}
        {%- if publisher_column and 'bi_publisher' in readers %}
            create policy bi_publisher_own_rows on {{ this }}
                for select to {{ bi_role('bi_publisher') }}
                using ({{ publisher_column }} = {{ session_setting('app.publisher_id') }});
        {%- endif %}
    {%- endif %}
    select 1
{%- endmacro %}


{#- on-run-end: the BI roles may look into schema marts (and nowhere else dbt builds). -#}
{% macro grant_marts_usage() -%}
    {%- set existing = existing_bi_roles() -%}
    {%- if existing and adapter.check_schema_exists(target.database, 'marts') %}
        grant usage on schema marts to {{ existing | join(', ') }};
    {%- endif %}
    select 1
{%- endmacro %}


{#-
    An aggregate a publisher may see only when it was computed over at least
    `min_tenants_per_aggregate` tenants (default 5); otherwise null, so no publisher can
    single out one tenant's usage from a small group.
-#}
{% macro suppress_below_min_tenants(expression, tenants) -%}
    case
        when {{ tenants }} >= {{ var('min_tenants_per_aggregate', 5) | int }}
            then {{ expression }}
    end
{%- endmacro %}
