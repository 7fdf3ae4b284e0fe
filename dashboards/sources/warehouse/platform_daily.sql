-- Operator: one row per day (marts.platform_daily).
select
    date_day,
    invocations,
    errored_invocations,
    gmv_usd,
    active_publishers,
    active_agents,
    active_tenants,
    installs,
    uninstalls,
    last_loaded_at
from marts.platform_daily
order by date_day
