"""`operational_health_live` over the loader's rollup gives the per-invocation values.

The view reads whole 10-second buckets from `raw.marketplace_tail_rollup` (kept by triggers
on raw.marketplace_events) and raw only at its windows' edges. Here it is compared, in one
transaction (one `now()`), with the view's per-invocation definition over the raw tail
(`REFERENCE`: `count`, `avg` and `percentile_disc` as macros/metrics.sql writes them), on
data chosen to break a wrong merge: repeated and unique durations, fractional, textual,
null and absent ones, errored invocations with durations, other event types, events on
bucket boundaries and in the future, groups of every size; loaded by `agent-loader load`
(COPY) and by insert, then after a delete, an update and a truncate.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.conftest import Database, Dbt, run_loader
from tests.factories import marketplace_event, write_ndjson

pytestmark = pytest.mark.dbt

REFERENCE = """
with windows as (
    select
        configured.window_minutes,
        now() - make_interval(mins => configured.window_minutes) as window_start_at,
        now() as window_end_at
    from unnest(array[5, 15, 60]) as configured (window_minutes)
)
select
    i.publisher_id,
    i.agent_id,
    w.window_minutes,
    count(*) as invocations,
    count(*) filter (where i.is_success) as completed_invocations,
    count(*) filter (where not i.is_success) as errored_invocations,
    cast(cast(count(*) filter (where not i.is_success) as numeric) / count(*) as numeric(38, 8)),
    cast(avg(i.duration_ms) filter (where i.is_success) as numeric(38, 6)),
    cast(percentile_disc(0.50) within group (order by i.duration_ms)
        filter (where i.is_success) as numeric(38, 6)),
    cast(percentile_disc(0.95) within group (order by i.duration_ms)
        filter (where i.is_success) as numeric(38, 6)),
    cast(percentile_disc(0.99) within group (order by i.duration_ms)
        filter (where i.is_success) as numeric(38, 6)),
    w.window_start_at,
    w.window_end_at,
    max(i.finished_at)
from staging.stg_marketplace__invocations_tail as i
inner join windows as w on i.finished_at > w.window_start_at
group by i.publisher_id, i.agent_id, w.window_minutes, w.window_start_at, w.window_end_at
"""

LIVE = """
select
    publisher_id, agent_id, window_minutes, invocations, completed_invocations,
    errored_invocations, error_rate, avg_response_time_ms, p50_response_time_ms,
    p95_response_time_ms, p99_response_time_ms, window_start_at, window_end_at,
    last_finished_at
from marts.operational_health_live
"""

# 60,000 events over the last 62 minutes (some 30 s ahead): 40 agents of 4 publishers with
# groups from a handful to thousands, durations repeating within buckets or not
PLANT = """
insert into raw.marketplace_events
    (id, event_type, agent_id, publisher_id, tenant_id, event_ts, properties, batch_id,
     loaded_at)
select
    'p' || n,
    (array['agent_completed', 'agent_completed', 'agent_errored', 'agent_invoked'])[1 + n % 4],
    'agent-' || (n % 40 * n % 13),
    'pub-' || (n % 4),
    'tenant-1',
    case
        when n % 97 = 0
            then to_timestamp(floor(extract(epoch from now()) / 10) * 10 - 10 * (n % 300))
        else now() + interval '30 seconds' - make_interval(secs => 3720.0 * random())
    end,
    case n % 9
        when 0 then '{"input_tokens": 1}'::jsonb
        when 1 then '{"duration_ms": "120"}'
        when 2 then '{"duration_ms": null}'
        when 3 then jsonb_build_object('duration_ms', round(cast(random() * 40 as numeric), 1))
        when 4 then jsonb_build_object('duration_ms', n)
        else jsonb_build_object('duration_ms', 100 + n % 7)
    end,
    1,
    now()
from generate_series(1, 60000) as n
"""


@pytest.fixture(scope="module")
def built(module_db: Database, dbt: Dbt) -> None:
    dbt("run", "--select", "+operational_health_live")


def differences(db: Database) -> tuple[int, int, int]:
    """(rows of the live view, rows only in the view, rows only in the reference), at one now()."""
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(f"select count(*) from ({LIVE}) as live")
        rows = cur.fetchone()[0]
        cur.execute(f"select count(*) from (({LIVE}) except ({REFERENCE})) as extra")
        extra = cur.fetchone()[0]
        cur.execute(f"select count(*) from (({REFERENCE}) except ({LIVE})) as missing")
        missing = cur.fetchone()[0]
    return rows, extra, missing


def rollup_matches_raw(db: Database) -> bool:
    """The rollup holds exactly raw's events of the last two hours, grouped."""
    regrouped = """
        select
            raw.marketplace_tail_bucket(event_ts), publisher_id, agent_id, event_type,
            jsonb_build_object('duration_ms', properties -> 'duration_ms'), count(*), max(event_ts)
        from raw.marketplace_events
        where event_ts > now() - interval '2 hours'
        group by 1, 2, 3, 4, 5
    """
    rollup = """
        select bucket_at, publisher_id, agent_id, event_type, duration, events, last_event_ts
        from raw.marketplace_tail_rollup
    """
    return (
        db.scalar(f"select count(*) from (({regrouped}) except all ({rollup})) as a") == 0
        and db.scalar(f"select count(*) from (({rollup}) except all ({regrouped})) as b") == 0
    )


def test_live_view_over_the_rollup_equals_the_per_invocation_definition(
    module_db: Database, built: None, tmp_path: Path
) -> None:
    now = datetime.now(timezone.utc)
    loaded = [
        marketplace_event(
            id=f"file-{i}",
            event_type="agent_errored" if i % 6 == 0 else "agent_completed",
            agent_id=f"agent-{i % 3}",
            publisher_id="pub-file",
            # 100 in the last 2 minutes, 500 from 30 to 39 minutes ago
            timestamp=(now - timedelta(seconds=1 + i if i < 100 else 1800 + i)).isoformat(),
            properties={"input_tokens": 1, "output_tokens": 1, "duration_ms": 50 + i % 11},
        )
        for i in range(600)
    ]
    run_loader(module_db, "load", str(write_ndjson(tmp_path / "batch.ndjson", loaded)))
    module_db.query(PLANT)
    assert rollup_matches_raw(module_db)

    rows, extra, missing = differences(module_db)
    assert rows > 100
    assert (extra, missing) == (0, 0)
    counted = module_db.query(
        "select window_minutes, sum(invocations), sum(errored_invocations)"
        " from marts.operational_health_live where publisher_id = 'pub-file'"
        " group by window_minutes order by window_minutes"
    )
    assert counted == [(5, 100, 17), (15, 100, 17), (60, 600, 100)]

    # an erasure-like delete and a rewrite of durations recount their buckets
    module_db.query("delete from raw.marketplace_events where agent_id = 'agent-3'")
    module_db.query(
        "update raw.marketplace_events set properties = '{\"duration_ms\": 1}'"
        " where agent_id = 'agent-5' and id like 'p%%'"
    )
    assert rollup_matches_raw(module_db)
    rows, extra, missing = differences(module_db)
    assert rows > 100
    assert (extra, missing) == (0, 0)

    module_db.query("truncate raw.marketplace_events")
    assert module_db.scalar("select count(*) from raw.marketplace_tail_rollup") == 0
    assert differences(module_db) == (0, 0, 0)
