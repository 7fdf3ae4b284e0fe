{#-
    The per-tenant LLM cost metrics the rules test, one row per tenant, metric and period:
    the as_of month's budget used, margin and unpriced calls (sample: the month's LLM calls),
    and each day of the dashboard window's cost over the tenant's median daily cost over the
    `llm_cost_spike_days` days before it (sample: the trailing days with a call). One
    definition for both readers: `tenant_llm_insights` (the insight rules, daily) and
    `agent-loader alerts` (the alert rules, on the rows of the current period).
-#}
{{
    config(
        indexes=[
            {'columns': ['tenant_id', 'metric_name', 'period_start_date'], 'unique': true},
        ],
    )
}}

with

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

    -- one row per tenant, metric and period of tenant_insight_metrics(), with the sample
    -- behind it, each value as an exact decimal (the union's one type)
    {%- set exact = numeric_type() %}
    {{
        insight_metric_rows(
            tenant_insight_metrics(),
            {
                'tenant_id': 'tenant_id',
                'period': "'month'",
                'period_start_date': 'month_start_date',
            },
            value_type=exact,
        )
    }}

),

final as (

    select
        -- ids
        tenant_id,

        -- strings
        metric_name,
        period,

        -- numerics
        cast(metric_value as numeric(38, 8)) as metric_value,
        cast(sample_size as bigint) as sample_size,

        -- booleans
        period_start_date = case period
            when 'day' then {{ marketplace_as_of_date() }}
            else cast(date_trunc('month', {{ marketplace_as_of_date() }}) as date)
        end as is_current_period,

        -- dates
        period_start_date,
        {{ marketplace_as_of_date() }} as as_of_date

    from metrics

)

select * from final
