{#-
    The insight rules of `seeds/insight_rules.csv` on LLM cost, per tenant: the same rules
    table, the same firing rule and texts as `insights` (which reads the marketplace metrics),
    on the tenant metrics here. Month rules read the `as_of` month to date; the spike rule
    reads each day of the dashboard window (llm_cost_daily summed per tenant) against the
    tenant's median daily cost over the `llm_cost_spike_days` days before it (days with a
    call; the sample is how many).
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

unit_economics as (

    select * from {{ ref('tenant_unit_economics_monthly') }}

),

cost_daily as (

    select * from {{ ref('llm_cost_daily') }}

),

this_month as (

    -- calls that name no tenant (tenant_id '') earn no revenue by definition: they are
    -- counted in the cost marts, but a margin or budget finding about "no tenant" would be noise
    select * from unit_economics
    where
        month_start_date = cast(date_trunc('month', {{ marketplace_as_of_date() }}) as date)
        and tenant_id != ''

),

daily_cost as (

    select
        tenant_id,
        date_day,
        sum(cost_usd) as cost_usd

    from cost_daily
    group by tenant_id, date_day

),

daily_spikes as (

    select
        window_days.tenant_id,
        window_days.date_day,
        window_days.cost_usd
        / nullif(
            percentile_cont(0.5) within group (order by trailing_days.cost_usd), 0
        ) as spike_ratio,
        count(trailing_days.date_day) as trailing_days

    from daily_cost as window_days
    inner join daily_cost as trailing_days
        on
            window_days.tenant_id = trailing_days.tenant_id
            and window_days.date_day > trailing_days.date_day
            and window_days.date_day - {{ var('llm_cost_spike_days') | int }}
            <= trailing_days.date_day
    where window_days.date_day >= {{ marketplace_window_start_date() }}
    group by window_days.tenant_id, window_days.date_day, window_days.cost_usd

),

metrics as (

    -- one row per tenant (and day, for the spike) and metric, with the sample behind it
    select
        tenant_id,
        cast(null as date) as date_day,
        'llm_budget_used_rate' as metric_name,
        cast(llm_budget_used_rate as numeric) as metric_value,
        llm_calls as sample_size
    from this_month

    union all

    select
        tenant_id,
        cast(null as date) as date_day,
        'margin_usd' as metric_name,
        cast(margin_usd as numeric) as metric_value,
        llm_calls as sample_size
    from this_month

    union all

    select
        tenant_id,
        cast(null as date) as date_day,
        'unpriced_llm_calls' as metric_name,
        cast(unpriced_llm_calls as numeric) as metric_value,
        llm_calls as sample_size
    from this_month

    union all

    select
        tenant_id,
        date_day,
        'llm_cost_spike_ratio' as metric_name,
        cast(spike_ratio as numeric) as metric_value,
        trailing_days as sample_size
    from daily_spikes

),

findings as (

    select
        metrics.tenant_id,
        metrics.date_day,
        metrics.metric_value,
        metrics.sample_size,
        rules.rule_id,
        rules.metric_name,
        rules.comparison,
        rules.threshold,
        rules.min_sample,
        rules.value_format,
        rules.severity,
        rules.category,
        rules.title_template,
        rules.description_template,
        rules.recommendation_template

    from metrics
    inner join rules
        on metrics.metric_name = rules.metric_name
    where
        metrics.metric_value is not null
        and metrics.sample_size >= rules.min_sample
        and case rules.comparison
            when '>' then metrics.metric_value > rules.threshold
            when '>=' then metrics.metric_value >= rules.threshold
            when '<' then metrics.metric_value < rules.threshold
            when '<=' then metrics.metric_value <= rules.threshold
        end

),

formatted as (

    select
        *,
        {{ insight_value_text('metric_value', 'value_format') }} as metric_value_text,
        {{ insight_threshold_text('threshold', 'value_format') }} as threshold_text

    from findings

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

    from formatted

)

select * from final
