{#-
    The publisher-facing `*_shared` marts are built from their base (operator) marts through
    one mapping per mart, in `shared_mart_mappings()` below:

        'publisher_daily_shared': {
            'base': 'publisher_daily',          # the mart it publishes (the model refs it)
            'columns': {                        # every column of the base mart, and those
                'publisher_id': 'shown',        # only the shared mart has, in its order
                'invocations': {'coarsen': 'count', 'when': 'is_invocations_published'},
                'has_suppressed_metrics': 'shown',
            },
        },

    A column is `shown` as the model's last CTE holds it, `withheld` (not in the shared mart),
    or published by a rule of:
    - `coarsen`: rounded to its step (macros/security.sql): `count` (`publish_count_step`,
      as bigint), `usd`, `rate`, `rating` or `ms` (`publish_<step>_step`);
    - `when`: a boolean column of the model's last CTE; null unless it is true. The model's
      SQL computes these flags (`is_<group>_published`): the tenants behind a group compared
      with the threshold `min_tenants_per_aggregate` (and, in `publisher_daily_shared`,
      complementary suppression);
    - `from`: the column of the model's last CTE to publish (default: the column itself).

    The model's `final` CTE is `select {{ shared_mart_columns('<mart>') }} from <last CTE>`.
    The test `maps_every_base_column` (tests/generic) fails when a base mart's column is
    missing from its mapping, so a column added to a base mart is published or withheld on
    purpose; the mart's contract fails the build when the mapping and its columns disagree.
    (The mappings are a macro, not YAML meta, because a unit test's rendering of the model
    sees no meta of the model.)
-#}
{% macro shared_mart_mappings() -%}
    {{ return({
        'publisher_dashboard_shared': {
            'base': 'publisher_dashboard',
            'columns': {
                'publisher_id': 'shown',
                'total_invocations': {'coarsen': 'count', 'when': 'is_invocations_published'},
                'completed_invocations': {'coarsen': 'count', 'when': 'is_invocations_published'},
                'errored_invocations': {'coarsen': 'count', 'when': 'is_invocations_published'},
                'unique_tenants': {'coarsen': 'count', 'when': 'is_invocations_published'},
                'active_installs': {'coarsen': 'count', 'when': 'is_installs_published'},
                'rating_count': {'coarsen': 'count', 'when': 'is_ratings_published'},
                'avg_satisfaction': {'coarsen': 'rating', 'when': 'is_ratings_published'},
                'error_rate': {'coarsen': 'rate', 'when': 'is_invocations_published'},
                'avg_response_time_ms': {'coarsen': 'ms', 'when': 'is_completions_published'},
                'p95_response_time_ms': {'coarsen': 'ms', 'when': 'is_completions_published'},
                'total_revenue': {'coarsen': 'usd', 'when': 'is_invocations_published'},
                'avg_revenue_per_tenant': {'coarsen': 'usd', 'when': 'is_invocations_published'},
                'has_suppressed_metrics': 'shown',
                'window_start_date': 'shown',
                'window_end_date': 'shown',
                'warehouse_last_loaded_at': 'shown',
            },
        },
        'publisher_daily_shared': {
            'base': 'publisher_daily',
            'columns': {
                'publisher_id': 'shown',
                'invocations': {'coarsen': 'count', 'when': 'is_invocations_published'},
                'completed_invocations': {'coarsen': 'count', 'when': 'is_invocations_published'},
                'errored_invocations': {'coarsen': 'count', 'when': 'is_invocations_published'},
                'error_rate': {'coarsen': 'rate', 'when': 'is_invocations_published'},
                'active_tenants': {'coarsen': 'count', 'when': 'is_invocations_published'},
                'revenue_usd': {'coarsen': 'usd', 'when': 'is_invocations_published'},
                'avg_response_time_ms': {'coarsen': 'ms', 'when': 'is_completions_published'},
                'p50_response_time_ms': {'coarsen': 'ms', 'when': 'is_completions_published'},
                'p90_response_time_ms': {'coarsen': 'ms', 'when': 'is_completions_published'},
                'p95_response_time_ms': {'coarsen': 'ms', 'when': 'is_completions_published'},
                'p99_response_time_ms': {'coarsen': 'ms', 'when': 'is_completions_published'},
                'rating_count': {'coarsen': 'count', 'when': 'is_ratings_published'},
                'rating_sum': {'coarsen': 'count', 'when': 'is_ratings_published'},
                'avg_satisfaction': {'coarsen': 'rating', 'when': 'is_ratings_published'},
                'has_suppressed_metrics': 'shown',
                'is_in_dashboard_window': 'shown',
                'date_day': 'shown',
                'last_loaded_at': 'withheld',
            },
        },
        'publisher_tool_usage_shared': {
            'base': 'publisher_tool_usage',
            'columns': {
                'publisher_id': 'shown',
                'tool_name': 'shown',
                'calls': {'coarsen': 'count', 'from': 'published_calls'},
                'failures': {'coarsen': 'count', 'when': 'is_events_published'},
                'failure_rate': {'coarsen': 'rate', 'when': 'is_events_published'},
                'tool_event_calls': {'coarsen': 'count', 'when': 'is_events_published'},
                'listed_in_completions': {'coarsen': 'count', 'when': 'is_listing_published'},
                'listed_in_errors': {'coarsen': 'count', 'when': 'is_listing_published'},
                'has_tool_events': {'from': 'published_has_tool_events'},
                'has_suppressed_metrics': 'shown',
                'window_start_date': 'shown',
                'window_end_date': 'shown',
            },
        },
        'agent_active_installs_shared': {
            'base': 'agent_active_installs',
            'columns': {
                'publisher_id': 'shown',
                'agent_id': 'shown',
                'active_installs': {'coarsen': 'count'},
                'tenants_ever_installed': {'coarsen': 'count'},
                'tenants_uninstalled': {'coarsen': 'count'},
                'has_suppressed_metrics': 'shown',
                'as_of_date': 'shown',
            },
        },
        'insights_shared': {
            'base': 'insights',
            'columns': {
                'insight_id': 'shown',
                'rule_id': 'shown',
                'publisher_id': 'shown',
                'agent_id': 'shown',
                'tool_name': 'shown',
                'severity': 'shown',
                'category': 'shown',
                'title': 'shown',
                'description': {'from': 'published_description'},
                'recommendation': 'shown',
                'metric_name': 'shown',
                'comparison': 'shown',
                'metric_value': {'from': 'published_value'},
                'threshold': 'shown',
                'sample_size': {'from': 'published_sample_size'},
                'min_sample': 'shown',
                'window_start_date': 'shown',
                'window_end_date': 'shown',
            },
        },
    }) }}
{%- endmacro %}


{#- The select list of the shared mart `shared_mart`, from its mapping. -#}
{% macro shared_mart_columns(shared_mart) -%}
    {%- set mapping = shared_mart_mappings().get(shared_mart) -%}
    {%- if not mapping -%}
        {{ exceptions.raise_compiler_error(
            shared_mart ~ ": no mapping in shared_mart_mappings() (macros/shared_marts.sql)") }}
    {%- endif -%}
    {%- set published = [] -%}
    {%- for column, rule in mapping['columns'].items() if rule != 'withheld' -%}
        {%- do published.append(shared_mart_column(column, rule)) -%}
    {%- endfor -%}
    {{ published | join(',\n        ') }}
{%- endmacro %}


{#- One published column: `expression as column`, by its rule. -#}
{% macro shared_mart_column(column, rule) -%}
    {%- if rule == 'shown' -%}
        {{ return(column) }}
    {%- endif -%}
    {%- if rule is not mapping -%}
        {{ exceptions.raise_compiler_error(
            "shared_mart: column " ~ column ~ " has rule " ~ rule
            ~ " (shown, withheld or a mapping of coarsen, when, from)") }}
    {%- endif -%}
    {%- set unknown = rule.keys() | reject('in', ['coarsen', 'when', 'from']) | list -%}
    {%- if unknown -%}
        {{ exceptions.raise_compiler_error(
            "shared_mart: column " ~ column ~ " has unknown keys " ~ unknown | join(', ')) }}
    {%- endif -%}
    {%- set expression = rule.get('from', column) -%}
    {%- set step = rule.get('coarsen') -%}
    {%- if step == 'count' -%}
        {%- set expression = coarsen_count(expression) -%}
    {%- elif step in ['usd', 'rate', 'rating', 'ms'] -%}
        {%- set expression = coarsen(expression, 'publish_' ~ step ~ '_step') -%}
    {%- elif step -%}
        {{ exceptions.raise_compiler_error(
            "shared_mart: column " ~ column ~ " has coarsen " ~ step
            ~ " (count, usd, rate, rating or ms)") }}
    {%- endif -%}
    {%- if rule.get('when') -%}
        {%- set expression = suppress_unless(expression, rule['when']) -%}
    {%- endif -%}
    {{ return(expression ~ ' as ' ~ column) }}
{%- endmacro %}


{#-
    The mapping's problems, as the failing rows of the test `maps_every_base_column`
    (shared_mart, column_name, problem): a base column the mapping lacks, a shared column the
    mapping does not publish, and a mapped column in neither mart. The mapping and the
    columns (those the YAML declares) default to the project's.
-#}
{% macro shared_mart_mapping_problems(
    shared_mart, mapping=none, base_columns=none, shared_columns=none
) -%}
    {%- if mapping is none -%}
        {%- set mapping = shared_mart_mappings().get(shared_mart) or {} -%}
    {%- endif -%}
    {%- if execute and base_columns is none -%}
        {%- set base = graph.nodes.get('model.' ~ project_name ~ '.' ~ mapping.get('base')) -%}
        {%- if base is none -%}
            {{ exceptions.raise_compiler_error(
                shared_mart ~ ": no base mart in shared_mart_mappings()") }}
        {%- endif -%}
        {%- set base_columns = base.columns.keys() | list -%}
    {%- endif -%}
    {%- if execute and shared_columns is none -%}
        {%- set shared = graph.nodes['model.' ~ project_name ~ '.' ~ shared_mart] -%}
        {%- set shared_columns = shared.columns.keys() | list -%}
    {%- endif -%}
    {%- set columns = mapping.get('columns') or {} -%}
    {%- set problems = [] -%}
    {%- for column in base_columns or [] if column not in columns -%}
        {%- do problems.append((column, 'base column not in the mapping')) -%}
    {%- endfor -%}
    {%- for column in shared_columns or []
        if column not in columns or columns[column] == 'withheld' -%}
        {%- do problems.append((column, 'shared column the mapping does not publish')) -%}
    {%- endfor -%}
    {%- for column in columns
        if column not in (base_columns or []) and column not in (shared_columns or []) -%}
        {%- do problems.append((column, 'mapped column in neither mart')) -%}
    {%- endfor -%}
    {%- set rows = [] -%}
    {%- for column, problem in problems -%}
        {%- do rows.append(
            "select '" ~ shared_mart ~ "' as shared_mart, '" ~ column ~ "' as column_name, '"
            ~ problem ~ "' as problem") -%}
    {%- endfor -%}
    {%- if not rows -%}
        {%- do rows.append(
            "select '" ~ shared_mart ~ "' as shared_mart, '' as column_name, '' as problem"
            ~ " where 1 = 0") -%}
    {%- endif -%}
    {{ rows | join('\nunion all\n') }}
{%- endmacro %}
