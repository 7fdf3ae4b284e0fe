-- Publisher portal: active installs per agent (marts.agent_active_installs_shared).
select
    publisher_id,
    agent_id,
    active_installs,
    tenants_ever_installed,
    tenants_uninstalled,
    has_suppressed_metrics,
    as_of_date
from marts.agent_active_installs_shared
order by publisher_id, agent_id
