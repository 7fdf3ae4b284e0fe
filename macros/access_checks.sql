{#-
    Checks that make `dbt build` refuse to run, or fail, where access control would not hold
    (docs/security.md, "What the build checks"). PostgreSQL only; no-ops on Spark.

    - `check_build_inputs()` (on-run-start): no role but the project's may create objects in
      a schema on the build's search path or in a schema the build reads, and no function or
      operator there belongs to another role. Otherwise a reader could plant a function
      (for example `public.percentile_cont(numeric order by numeric)`) that the build, with
      its privileges, would call. The project's roles: superusers, the role running the
      build, the transformer, the owner of schema `raw` (the role that ran `agent-loader
      init` and `roles`) and the database owner; the loader may also write `raw`. Also
      refuses a prefix that names no roles in a database where `agent-loader roles` ran.
    - `check_reader_access()` (on-run-end): no relation of the project's schemas is granted
      to a tenant, publisher or trusted-application reader (or PUBLIC) without row-level
      security (tables) or `security_invoker` (views), and every mart carries exactly the
      grants `apply_bi_access()` makes, so a `grants:` config on a mart fails the build.
-#}

{#- The schemas the build reads or writes, besides those on its search path. -#}
{% macro project_schemas() -%}
    {{ return(['raw', 'access', 'staging', 'intermediate', 'marts', 'seeds']) }}
{%- endmacro %}


{#- A SQL list of quoted strings. -#}
{% macro sql_strings(values) -%}
    ({%- for value in values -%}'{{ value }}'{{ ", " if not loop.last }}{%- endfor -%})
{%- endmacro %}


{% macro check_build_inputs() -%}
    {{ return(adapter.dispatch('check_build_inputs', 'agent_analytics')()) }}
{%- endmacro %}


{% macro default__check_build_inputs() -%}
    {%- if execute -%}
        {%- do check_role_prefix() -%}
        {%- set found = run_query(build_inputs_problems_sql()) -%}
        {%- set problems = found.columns[0].values() | list -%}
        {%- if problems -%}
            {{ exceptions.raise_compiler_error(
                "dbt build refused: a role that is not the project's could make the build run"
                ~ " its code (docs/security.md, \"What the build checks\"):\n  - "
                ~ problems | join("\n  - ")
                ~ "\nRevoke that create privilege (`revoke create on schema NAME from ROLE`;"
                ~ " for PUBLIC on schema public: `agent-loader roles` does it), drop or"
                ~ " reassign those functions and operators, then build again.") }}
        {%- endif -%}
    {%- endif %}
    select 1
{%- endmacro %}


{% macro build_inputs_problems_sql() -%}
    with trusted as (
        select pg_roles.oid
        from pg_catalog.pg_roles as pg_roles
        where
            pg_roles.rolsuper
            or pg_roles.rolname in (
                current_user, session_user, 'pg_database_owner', '{{ bi_role("transformer") }}'
            )
        union all
        select pg_namespace.nspowner
        from pg_catalog.pg_namespace as pg_namespace
        where pg_namespace.nspname = 'raw'
        union all
        select pg_database.datdba
        from pg_catalog.pg_database as pg_database
        where pg_database.datname = current_database()
    ),

    checked as (
        select
            pg_namespace.oid,
            pg_namespace.nspname,
            pg_namespace.nspowner,
            pg_namespace.nspacl
        from pg_catalog.pg_namespace as pg_namespace
        where
            pg_namespace.nspname = any(current_schemas(false))
            or pg_namespace.nspname in {{ sql_strings(project_schemas()) }}
    ),

    problems as (
        select
            'schema ' || checked.nspname || ' is owned by '
            || pg_catalog.pg_get_userbyid(checked.nspowner) as problem
        from checked
        where checked.nspowner not in (select trusted.oid from trusted)
        union all
        select
            'schema ' || checked.nspname || ' grants create to '
            || case
                when acl.grantee = 0 then 'PUBLIC (every role)'
                else pg_catalog.pg_get_userbyid(acl.grantee)
            end as problem
        from checked
        cross join lateral pg_catalog.aclexplode(checked.nspacl) as acl
        where
            acl.privilege_type = 'CREATE'
            and acl.grantee not in (select trusted.oid from trusted)
            and not (
                checked.nspname = 'raw'
                and acl.grantee = to_regrole('{{ bi_role("loader") }}')
            )
        union all
        select
            'function ' || pg_proc.oid::regprocedure::text || ' is owned by '
            || pg_catalog.pg_get_userbyid(pg_proc.proowner) as problem
        from pg_catalog.pg_proc as pg_proc
        inner join checked on pg_proc.pronamespace = checked.oid
        where pg_proc.proowner not in (select trusted.oid from trusted)
        union all
        select
            'operator ' || pg_operator.oid::regoperator::text || ' is owned by '
            || pg_catalog.pg_get_userbyid(pg_operator.oprowner) as problem
        from pg_catalog.pg_operator as pg_operator
        inner join checked on pg_operator.oprnamespace = checked.oid
        where pg_operator.oprowner not in (select trusted.oid from trusted)
    )

    select problems.problem
    from problems
    order by problems.problem
{%- endmacro %}


{#-
    In a database where `agent-loader roles` ran (access.reader_grants exists), the prefix
    must name its roles: a build with another prefix would grant nobody, silently.
-#}
{% macro check_role_prefix() -%}
    {%- set wanted = [] -%}
    {%- for suffix in ['loader', 'transformer', 'bi_operator', 'bi_publisher', 'bi_tenant',
        'bi_trusted_app'] -%}
        {%- do wanted.append(bi_role(suffix)) -%}
    {%- endfor -%}
    {%- set found = run_query(
        "select to_regclass('access.reader_grants') is not null,"
        ~ " (select string_agg(wanted.rolname, ', ' order by wanted.rolname)"
        ~ " from unnest(array" ~ sql_strings(wanted).replace('(', '[').replace(')', ']')
        ~ "::text []) as wanted (rolname)"
        ~ " where to_regrole(wanted.rolname) is null),"
        ~ " (select string_agg(left(rolname, -length('transformer')), ', ' order by rolname)"
        ~ " from pg_catalog.pg_roles where rolname like '%transformer'"
        ~ " and shobj_description(oid, 'pg_authid')"
        ~ " = 'agent-analytics: created by agent-loader roles')"
    ) -%}
    {%- set row = found.rows[0] -%}
    {%- if row[0] and row[1] -%}
        {{ exceptions.raise_compiler_error(
            "dbt build refused: `agent-loader roles` ran in this database, but the roles "
            ~ row[1] ~ " of the role prefix '" ~ role_prefix()
            ~ "' do not exist, so the build would grant the marts to nobody. Set"
            ~ " AGENT_ANALYTICS_ROLE_PREFIX (or the role_prefix var) to the prefix"
            ~ " `agent-loader roles` used (prefixes with roles here: "
            ~ (row[2] or 'none') ~ ").") }}
    {%- endif -%}
{%- endmacro %}


{% macro check_reader_access() -%}
    {{ return(adapter.dispatch('check_reader_access', 'agent_analytics')()) }}
{%- endmacro %}


{% macro default__check_reader_access() -%}
    {%- if execute -%}
        {%- set found = run_query(reader_access_problems_sql()) -%}
        {%- set problems = found.columns[0].values() | list -%}
        {%- if problems -%}
            {{ exceptions.raise_compiler_error(
                "dbt build failed the access check: readers could see rows or relations"
                ~ " they must not (docs/security.md, \"What the build checks\"):\n  - "
                ~ problems | join("\n  - ")
                ~ "\nA mart's readers are set by meta.bi_access (dbt_project.yml), never by"
                ~ " a `grants:` config; remove such grants (`revoke ... from ROLE`) and"
                ~ " build again.") }}
        {%- endif -%}
    {%- endif %}
    select 1
{%- endmacro %}


{#-
    SQL `values` rows (mart name, its readers comma-separated): every mart and snapshot in
    schema marts with the roles the access hook grants it.
-#}
{% macro expected_grants_values() -%}
    {%- set rows = [] -%}
    {%- for name, roles in expected_mart_grants() -%}
        {%- do rows.append("('" ~ name ~ "', '" ~ roles | join(',') ~ "')") -%}
    {%- endfor -%}
    {{ return(rows | join(', ') or "(null, null)") }}
{%- endmacro %}


{#- (mart name, [role names]) for every mart and snapshot in schema marts. -#}
{% macro expected_mart_grants() -%}
    {%- set existing = existing_bi_roles() -%}
    {%- set expected = [] -%}
    {%- for node in graph.nodes.values() -%}
        {%- if node.resource_type in ('model', 'snapshot') and node.schema == 'marts' -%}
            {%- set access = (node.config.get('meta') or {}).get('bi_access') or {} -%}
            {%- set roles = [] -%}
            {%- for suffix in bi_access_readers(access, existing) -%}
                {%- do roles.append(bi_role(suffix)) -%}
            {%- endfor -%}
            {%- do expected.append((node.alias or node.name, roles)) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(expected) }}
{%- endmacro %}


{% macro reader_access_problems_sql() -%}
    {%- set limited = [bi_role('bi_publisher'), bi_role('bi_tenant'), bi_role('bi_trusted_app')] -%}
    with limited_readers as (
        select pg_roles.oid
        from pg_catalog.pg_roles as pg_roles
        where pg_roles.rolname in {{ sql_strings(limited) }}
    ),

    project_relations as (
        select
            pg_class.oid,
            pg_class.relname,
            pg_class.relkind,
            pg_class.relrowsecurity,
            pg_class.relowner,
            pg_class.relacl,
            pg_class.reloptions,
            pg_namespace.nspname
        from pg_catalog.pg_class as pg_class
        inner join pg_catalog.pg_namespace as pg_namespace
            on pg_class.relnamespace = pg_namespace.oid
        where
            pg_namespace.nspname in {{ sql_strings(project_schemas()) }}
            and pg_class.relkind in ('r', 'p', 'v', 'm', 'f')
    ),

    granted_to_limited as (
        select distinct project_relations.*
        from project_relations
        cross join lateral pg_catalog.aclexplode(project_relations.relacl) as acl
        where
            acl.privilege_type = 'SELECT'
            and (
                acl.grantee = 0
                or exists (
                    select
                    from limited_readers
                    inner join pg_catalog.pg_roles as grantee
                        on grantee.oid = acl.grantee
                    where
                        not grantee.rolsuper
                        and pg_catalog.pg_has_role(acl.grantee, limited_readers.oid, 'member')
                )
            )
    ),

    expected as (
        select
            expected_grants.relname,
            string_to_array(expected_grants.roles, ',') as roles
        from (values {{ expected_grants_values() }}) as expected_grants (relname, roles)
    ),

    problems as (
        select
            granted_to_limited.nspname || '.' || granted_to_limited.relname
            || case
                when granted_to_limited.relkind = 'v'
                    then ' is a view a row-limited reader may read without security_invoker'
                else ' is readable by a row-limited reader without row-level security'
            end as problem
        from granted_to_limited
        where
            granted_to_limited.relkind in ('m', 'f')
            or (granted_to_limited.relkind in ('r', 'p') and not granted_to_limited.relrowsecurity)
            or (
                granted_to_limited.relkind = 'v'
                and not coalesce(
                    'security_invoker=on' = any(granted_to_limited.reloptions)
                    or 'security_invoker=true' = any(granted_to_limited.reloptions),
                    false
                )
            )
        union all
        select
            'marts.' || project_relations.relname || ' grants ' || acl.privilege_type || ' to '
            || case
                when acl.grantee = 0 then 'PUBLIC'
                else pg_catalog.pg_get_userbyid(acl.grantee)
            end
            || ', which the access hook (meta.bi_access) did not grant' as problem
        from project_relations
        inner join expected on project_relations.relname = expected.relname
        cross join lateral pg_catalog.aclexplode(project_relations.relacl) as acl
        where
            project_relations.nspname = 'marts'
            and acl.grantee <> project_relations.relowner
            and (
                acl.privilege_type <> 'SELECT'
                or acl.grantee = 0
                or pg_catalog.pg_get_userbyid(acl.grantee) <> all(expected.roles)
            )
    )

    select distinct problems.problem
    from problems
    order by problems.problem
{%- endmacro %}
