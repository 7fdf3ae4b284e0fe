-- Operator: tenant retention per monthly cohort (marts.tenant_retention_monthly).
select
    cohort_month_start_date,
    activity_month_start_date,
    months_since_cohort,
    cohort_tenants,
    retained_tenants,
    retention_rate
from marts.tenant_retention_monthly
order by cohort_month_start_date, months_since_cohort
