{#-
    The insight rules of `seeds/insight_rules.csv` on LLM cost, per tenant: the same rules
    table, the same firing rule and texts as `insights` (which reads the marketplace metrics),
    on the per-tenant metrics of `tenant_llm_metrics`, which the alert rules read too. Month
    rules read the `as_of` month to date; the spike rule each day of the dashboard window.
-#}
{{
    config(
        indexes=[
            {'columns': ['tenant_id', 'insight_id'], 'unique': true},
        ],
    )
}}

with

rules as (

    select * from {{ ref('insight_rules') }}
    where is_enabled

),

tenant_metrics as (

    select * from {{ ref('tenant_llm_metrics') }}

),

metrics as (

    -- one row per tenant, metric and period (the spike: each day of the window)
    select
        tenant_id,
        metric_name,
        metric_value,
        sample_size,
        case when period = 'day' then period_start_date end as date_day

    from tenant_metrics

),

findings as (

    {{ insight_findings(['tenant_id', 'date_day']) }}

),

final as (

    select
        md5(
            rule_id
            || '|' || tenant_id
            || '|' || coalesce(cast(date_day as {{ text_type() }}), '')
        ) as insight_id,
        rule_id,
        tenant_id,
        severity,
        category,
        title_template as title,
        replace(
            replace(description_template, '{metric_value}', metric_value_text),
            '{threshold}', threshold_text
        ) as description,
        recommendation_template as recommendation,
        metric_name,
        comparison,
        cast(metric_value as numeric(38, 8)) as metric_value,
        cast(threshold as numeric(38, 8)) as threshold,
        sample_size,
        min_sample,
        date_day,
        cast(date_trunc('month', {{ marketplace_as_of_date() }}) as date) as month_start_date

    from findings

)

select * from final
