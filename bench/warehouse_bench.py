"""Warehouse scale: load N events, full and incremental `dbt build`, BI query latency.

    python bench/warehouse_bench.py                   # 10,000,000 events (about 30 min)
    python bench/warehouse_bench.py --events 1000000
    python bench/warehouse_bench.py --quick           # 50,000 events: the CI smoke run
    python bench/warehouse_bench.py --quick --json out.json

On a fresh database of its own (dropped at the end unless --keep):

 1. generate N events over --days days (both seed shapes, half and half) and load them
    with `agent-loader load` (a subprocess: its peak memory is its own ru_maxrss);
 2. age the history: batch i of n is marked loaded (n - i) / n x --days days ago, as if
    the loader had run all along (one UPDATE, then the table rewritten in load order, as the
    loader's appends would have left it; not timed). Without it all of history was
    loaded minutes ago, inside every incremental model's `lookback_hours`, and an
    incremental build would rightly recompute all of it;
 3. `dbt build` (every model, seed, snapshot and test): the full build;
 4. generate and load 1% more (--increment): a second workload with another seed over the
    last three days, ending an hour after the first (every event lands inside the
    72-hour lookback, most of them earlier than the latest data already built), plus late
    events (--late, default 10% of the increment) for conversations already built: one
    message each, timed a second before the conversation's last event;
 5. the three cadences (selectors.yml), each `dbt build --selector ...` timed: realtime,
    hourly (the "incremental build" of the targets and of `--json`'s `incremental_build`)
    and daily; then, unless --no-verify, `dbt run --full-refresh` and a fingerprint of every
    mart compared with the incremental one;
 6. BI questions, each on the marts and on the raw table with the same data (seed 000's
    QUERIES as written, `search_path` raw; for the publisher questions the query seed
    004's PublisherAnalyticsService implies): median of --repeat runs after a warm-up,
    and whether both give the same answer.

The build date (`as_of`) is pinned to the day of the newest event so every build sees the
same dashboard window. Connection: the PG* variables, --dsn, or the embedded server.
Targets: hourly cadence <= 10% of full, realtime cadence <= 15 s; every BI question on the
marts >= 100x faster than on raw and under 50 ms; loader memory flat as N grows.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import psycopg2

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

from loader_bench import Scratch, _server_dsn  # noqa: E402

from loader.devtools.generate import Workload, generate  # noqa: E402
from loader.operations import dbt as dbt_runner  # noqa: E402

QUICK_EVENTS = 50_000

# seed 000's QUERIES, verbatim (the article's `QUERIES` dict); run on raw.agent_events.
SEED_QUERIES = {
    "conversations_per_hour": """
SELECT date_trunc('hour', event_ts) AS hour,
COUNT(DISTINCT conversation_id) AS conversations
FROM agent_events
WHERE event_type = 'message'
AND event_ts >= NOW() - INTERVAL '24 hours'
GROUP BY 1 ORDER BY 1
""",
    "avg_resolution_time": """
SELECT agent_name,
AVG(EXTRACT(EPOCH FROM (max_ts - min_ts))) AS avg_seconds
FROM (
SELECT conversation_id, agent_name,
MIN(event_ts) AS min_ts, MAX(event_ts) AS max_ts
FROM agent_events
GROUP BY conversation_id, agent_name
) sub
GROUP BY agent_name
""",
    "top_error_types": """
SELECT payload->>'error_type' AS error_type,
COUNT(*) AS occurrences
FROM agent_events
WHERE event_type = 'error'
GROUP BY 1 ORDER BY 2 DESC LIMIT 10
""",
}

# Seed 004 has no SQL: its PublisherAnalyticsService fetches a publisher's events of the
# last `period_days` and computes in Python. These are the straightforward queries that
# implies, over the same window as the marts (the `dashboard_window_days` UTC days ending
# with `as_of`). The dashboard leaves out the tool breakdown (it would only slow raw down).
RAW_PUBLISHER_QUERIES = {
    "publisher_dashboard": """
select
    count(*) filter (where event_type in ('agent_completed', 'agent_errored'))
        as total_invocations,
    count(distinct tenant_id) filter (
        where event_type in ('agent_completed', 'agent_errored')) as unique_tenants,
    avg((properties ->> 'rating')::numeric) filter (where event_type = 'user_feedback')
        as avg_satisfaction,
    (count(*) filter (where event_type = 'agent_errored'))::numeric / nullif(
        count(*) filter (where event_type in ('agent_completed', 'agent_errored')), 0)
        as error_rate,
    avg((properties ->> 'duration_ms')::numeric) filter (where event_type = 'agent_completed')
        as avg_response_time_ms,
    percentile_disc(0.95) within group (order by (properties ->> 'duration_ms')::numeric)
        filter (where event_type = 'agent_completed') as p95_response_time_ms,
    coalesce(sum((properties ->> 'cost_usd')::numeric)
        filter (where event_type = 'agent_completed'), 0) as total_revenue
from marketplace_events
where publisher_id = %(publisher)s
    and event_ts >= (%(as_of)s::date - %(window)s + 1)::timestamp at time zone 'utc'
    and event_ts < (%(as_of)s::date + 1)::timestamp at time zone 'utc'
""",
    "publisher_trend_30d": """
select
    (event_ts at time zone 'utc')::date as date_day,
    count(*) as invocations,
    coalesce(sum((properties ->> 'cost_usd')::numeric)
        filter (where event_type = 'agent_completed'), 0) as revenue_usd,
    (count(*) filter (where event_type = 'agent_errored'))::numeric / count(*) as error_rate
from marketplace_events
where publisher_id = %(publisher)s
    and event_type in ('agent_completed', 'agent_errored')
    and event_ts >= (%(as_of)s::date - %(window)s + 1)::timestamp at time zone 'utc'
    and event_ts < (%(as_of)s::date + 1)::timestamp at time zone 'utc'
group by 1
order by 1
""",
}

MART_QUERIES = {
    "conversations_per_hour": """
select hour, conversations from marts.conversations_hourly
where hour >= date_trunc('hour', now() - interval '24 hours') and conversations > 0
order by hour
""",
    "avg_resolution_time": """
select agent_name, avg_resolution_seconds from marts.agent_resolution_times order by agent_name
""",
    "top_error_types": """
select error_type, occurrences from marts.error_types_ranked where rank <= 10 order by rank
""",
    "publisher_dashboard": """
select total_invocations, unique_tenants, avg_satisfaction, error_rate, avg_response_time_ms,
    p95_response_time_ms, total_revenue
from marts.publisher_dashboard where publisher_id = %(publisher)s
""",
    "publisher_trend_30d": """
select date_day, invocations, revenue_usd, error_rate from marts.publisher_daily
where publisher_id = %(publisher)s and is_in_dashboard_window and invocations > 0
order by date_day
""",
}

QUESTIONS = {
    "conversations_per_hour": "conversations per hour, last day",
    "avg_resolution_time": "resolution time per agent",
    "top_error_types": "top 10 error types",
    "publisher_dashboard": "one publisher's dashboard",
    "publisher_trend_30d": "one publisher's 30-day trend",
}


# --- steps ---------------------------------------------------------------------------------


def timed(function, *args, **kwargs) -> tuple[float, Any]:
    started = time.perf_counter()
    value = function(*args, **kwargs)
    return time.perf_counter() - started, value


def run_loader(dsn: str, folder: Path) -> tuple[dict, float]:
    """`agent-loader load DIR --json` as a subprocess: its summary and its own peak RSS (MiB).

    os.wait4 gives the rusage of that one child, so dbt's memory (also a child of this
    process) never counts as the loader's.
    """
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "loader", "load", str(folder), "--dsn", dsn, "--json"],
            stdout=out,
            cwd=REPO,
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise click.ClickException(f"agent-loader load exited {process.returncode}")
        out.seek(0)
        files = json.loads(out.read())
    keys = ("records_read", "loaded", "duplicates", "quarantined")
    summary = {key: sum(f[key] for f in files) for key in keys}
    summary["files_failed"] = sum(f["status"] == "failed" for f in files)
    return summary, usage.ru_maxrss / 1024


def age_history(dsn: str, days: int) -> None:
    """Mark batch i of n loaded (n - i) / n x `days` ago: the loader running all along.

    One UPDATE per raw table, the two on their own connections at once.
    """

    def age(table: str) -> None:
        conn = psycopg2.connect(dsn)
        with conn.cursor() as cur:
            cur.execute(
                f"""
                with batches as (
                    select batch_id, row_number() over (order by batch_id desc) - 1 as age,
                        count(*) over () as n
                    from raw.load_batches where status = 'loaded'
                )
                update {table} as e
                set loaded_at = e.loaded_at - make_interval(
                    secs => batches.age * %s * 86400.0 / batches.n)
                from batches where batches.batch_id = e.batch_id
                """,
                (days,),
            )
        # The loader appends, so on a real server rows lie in load order and the BRIN index on
        # loaded_at narrows every incremental read to the newest pages; the UPDATE above
        # scattered them. Put them back in load order (not timed), as the loader would have.
        index = f"{table.split('.')[1]}_bench_load_order"
        cur = conn.cursor()
        cur.execute(f"create index {index} on {table} (loaded_at)")
        cur.execute(f"cluster {table} using {index}")
        cur.execute(f"drop index raw.{index}")
        conn.commit()
        conn.autocommit = True
        conn.cursor().execute(f"vacuum analyze {table}")
        conn.close()

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(age, ("raw.agent_events", "raw.marketplace_events")))


def write_late_events(dsn: str, folder: Path, count: int) -> int:
    """One late message each for `count` built conversations, a second before their end."""
    conn = psycopg2.connect(dsn)
    with conn.cursor() as cur:
        cur.execute(
            """
            select conversation_id, user_id, session_id, last_agent_name,
                ended_at - interval '1 second'
            from marts.fct_conversations
            where ended_at >= (select max(ended_at) from marts.fct_conversations)
                - interval '72 hours'
            order by md5(conversation_id)
            limit %s
            """,
            (count,),
        )
        rows = cur.fetchall()
    conn.close()
    with open(folder / "late-00000.ndjson", "w", encoding="utf-8") as handle:
        for i, (conversation_id, user_id, session_id, agent, at) in enumerate(rows):
            record = {
                "event_id": f"late-{i:08d}-{conversation_id}",
                "conversation_id": conversation_id,
                "session_id": session_id,
                "event_type": "message",
                "timestamp": at.astimezone(timezone.utc).replace(tzinfo=None).isoformat(),
                "agent_name": agent,
                "user_id": user_id,
                "payload": {"text": "Sorry, one more thing.", "role": "user"},
                "metadata": {"total_tokens": 12},
            }
            handle.write(json.dumps(record, separators=(",", ":")) + "\n")
    return len(rows)


class Dbt:
    """dbt on the project against the scratch database, with its own profiles and target."""

    def __init__(self, dsn: str, folder: Path, as_of: str) -> None:
        self.env = dbt_runner.environment(dsn)
        self.folder = folder
        (folder / "profiles").mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "profiles.yml", folder / "profiles" / "profiles.yml")
        self.vars = json.dumps({"as_of": as_of})
        self.log = folder / "dbt-output.log"

    def __call__(self, *args: str) -> dict:
        """Run dbt; returns the run's timing summary from run_results.json."""
        command = [
            str(Path(sys.executable).with_name("dbt")),
            *args,
            "--vars",
            self.vars,
            "--profiles-dir",
            str(self.folder / "profiles"),
            "--target-path",
            str(self.folder / "target"),
            "--log-path",
            str(self.folder / "logs"),
        ]
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        result = subprocess.run(command, env=self.env, cwd=REPO, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        # the machine may be shared: the 1-minute load average before and after, as `uptime`
        load = (round(load_before, 2), round(os.getloadavg()[0], 2))
        with open(self.log, "a", encoding="utf-8") as log:
            log.write(f"$ dbt {' '.join(args)}\n{result.stdout}\n")
        if result.returncode != 0:
            tail = "\n".join(result.stdout.splitlines()[-40:])
            raise click.ClickException(f"dbt {' '.join(args)} failed:\n{tail}")
        results = json.loads((self.folder / "target" / "run_results.json").read_text())
        nodes = [(*_node_name(r["unique_id"]), r["execution_time"]) for r in results["results"]]
        return {
            "seconds": seconds,
            "load_average": load,
            "model_seconds": sum(t for kind, _, t in nodes if kind != "test"),
            "test_seconds": sum(t for kind, _, t in nodes if kind == "test"),
            "slowest": sorted(((t, kind, name) for kind, name, t in nodes), reverse=True)[:8],
            "nodes": {f"{kind}.{name}": round(t, 3) for kind, name, t in nodes},
        }


def _node_name(unique_id: str) -> tuple[str, str]:
    """(resource type, name) of a node: `test.project.name.hash` keeps the name, not the hash."""
    parts = unique_id.split(".")
    return parts[0], parts[-1] if parts[0] == "unit_test" else parts[2]


def mart_fingerprints(dsn: str) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent md5 of every mart, table or view (the snapshot and
    the live view, whose windows end at the query's now(), left out)."""
    conn = psycopg2.connect(dsn)
    prints = {}
    with conn.cursor() as cur:
        cur.execute(
            "select table_name from information_schema.tables where table_schema = 'marts'"
            " and table_type in ('BASE TABLE', 'VIEW')"
            " and table_name not in ('insights_history', 'operational_health_live')"
            " order by table_name"
        )
        for (table,) in cur.fetchall():
            cur.execute(
                f"select count(*), md5(coalesce(string_agg(h, '' order by h), ''))"
                f" from (select md5(t::text) as h from marts.{table} as t) as rows"
            )
            prints[table] = tuple(cur.fetchone())
    conn.close()
    return prints


def table_sizes(dsn: str) -> list[tuple[str, int, int]]:
    """(schema.table, rows estimate, total bytes with indexes and TOAST) per table."""
    conn = psycopg2.connect(dsn)
    with conn.cursor() as cur:
        cur.execute(
            """
            select n.nspname || '.' || c.relname, c.reltuples::bigint,
                pg_total_relation_size(c.oid)
            from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
            where c.relkind = 'r'
                and n.nspname in ('raw', 'staging', 'intermediate', 'marts', 'seeds')
            order by 3 desc
            """
        )
        rows = cur.fetchall()
    conn.close()
    return rows


def _normalise(value: Any) -> Any:
    if isinstance(value, (Decimal, float)):
        return round(float(value), 4)
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    return value


def bi_latency(dsn: str, params: dict, repeat: int) -> list[dict]:
    """Each BI question on the marts and on raw: median milliseconds, and same answer?"""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("set timezone to 'UTC'")
    raw_sql = {**SEED_QUERIES, **RAW_PUBLISHER_QUERIES}

    def measure(sql: str, search_path: str) -> tuple[float, list[tuple]]:
        cur.execute(f"set search_path to {search_path}")
        times, rows = [], []
        for _ in range(repeat + 1):  # the first run warms the cache and is not counted
            started = time.perf_counter()
            cur.execute(sql, params)
            rows = cur.fetchall()
            times.append((time.perf_counter() - started) * 1000)
        return statistics.median(times[1:]), rows

    results = []
    for name in QUESTIONS:
        mart_ms, mart_rows = measure(MART_QUERIES[name], "marts")
        raw_ms, raw_rows = measure(raw_sql[name], "raw")
        mart_answer = [tuple(_normalise(v) for v in row) for row in mart_rows]
        raw_answer = [tuple(_normalise(v) for v in row) for row in raw_rows]
        if name == "conversations_per_hour":
            # the seed's first hour is cut at `now() - 24 hours`: compare whole hours only
            # (by hour: either side may have no row for the partial hour)
            partial = _normalise(
                (datetime.now(timezone.utc) - timedelta(hours=24)).replace(
                    minute=0, second=0, microsecond=0
                )
            )
            mart_answer = [row for row in mart_answer if row[0] != partial]
            raw_answer = [row for row in raw_answer if row[0] != partial]
        if name == "avg_resolution_time":
            raw_answer = sorted(raw_answer)
        if name == "top_error_types":  # the seed's order among ties is unspecified
            mart_answer, raw_answer = sorted(mart_answer), sorted(raw_answer)
        results.append(
            {
                "question": name,
                "mart_ms": mart_ms,
                "raw_ms": raw_ms,
                "speedup": raw_ms / mart_ms,
                "rows": len(mart_rows),
                "same_answer": mart_answer == raw_answer,
            }
        )
    conn.close()
    return results


# --- the run -------------------------------------------------------------------------------


def _mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def _log(message: str) -> None:
    click.echo(f"[{time.strftime('%H:%M:%S')}] {message}", err=True)


def run(
    events: int,
    days: int,
    seed: int,
    increment: float,
    late: int | None,
    repeat: int,
    verify: bool,
    server: str,
    keep: bool,
    per_file: int = 50_000,
) -> dict:
    end = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    end -= timedelta(hours=2)
    as_of = (end + timedelta(hours=1)).date().isoformat()
    report: dict[str, Any] = {"events": events, "days": days, "seed": seed, "as_of": as_of}
    db = Scratch(server)
    report["database"] = db.name
    _log(f"database {db.name}")
    try:
        with tempfile.TemporaryDirectory(prefix="aa-wbench-") as tmp:
            folder = Path(tmp)
            history, extra = folder / "history", folder / "increment"

            _log(f"generating {events:,} events over {days} days ...")
            workload = Workload(events=events, days=days, end=end, seed=seed)
            workload.events_per_file = per_file
            report["generate_seconds"], written = timed(generate, workload, history)
            report["events_written"] = written.events
            report["files"] = len(written.files)
            report["bytes"] = sum(p.stat().st_size for p in written.files)

            _log("loading ...")
            seconds, (summary, peak) = timed(run_loader, db.dsn, history)
            report["load"] = {"seconds": seconds, "peak_mib": peak, "summary": summary}
            _log("ageing history (loaded_at spread over the days, not timed) ...")
            report["age_seconds"], _ = timed(age_history, db.dsn, days)

            dbt = Dbt(db.dsn, folder / "dbt", as_of)
            _log("full dbt build ...")
            report["full_build"] = dbt("build")
            _log(f"full build {report['full_build']['seconds']:.1f}s")
            report["sizes_full"] = table_sizes(db.dsn)

            more = max(1, int(events * increment))
            late_count = more // 10 if late is None else late
            _log(f"generating {more:,} more events and {late_count:,} late ones ...")
            extra_workload = Workload(
                events=more, days=3, end=end + timedelta(hours=1), seed=seed + 1000
            )
            extra_workload.events_per_file = per_file
            generated = generate(extra_workload, extra)
            late_written = write_late_events(db.dsn, extra, late_count)
            _log("loading the increment ...")
            seconds, (summary, peak) = timed(run_loader, db.dsn, extra)
            report["increment"] = {
                "events": generated.events,
                "late": late_written,
                "seconds": seconds,
                "peak_mib": peak,
                "summary": summary,
            }
            # The cadences (selectors.yml) in the order cron would have run them: realtime
            # (every few minutes) is first to see new data, then hourly, then daily.
            _log("realtime cadence ...")
            report["realtime_build"] = dbt("build", "--selector", "realtime")
            _log("hourly cadence (the incremental build) ...")
            report["incremental_build"] = dbt("build", "--selector", "hourly")
            _log(f"hourly build {report['incremental_build']['seconds']:.1f}s")
            _log("daily cadence ...")
            report["daily_build"] = dbt("build", "--selector", "daily")
            report["sizes"] = table_sizes(db.dsn)

            _log("BI questions ...")
            conn = psycopg2.connect(db.dsn)
            with conn.cursor() as cur:
                cur.execute(
                    "select publisher_id from marts.publisher_dashboard"
                    " order by total_invocations desc limit 1"
                )
                publisher = cur.fetchone()[0]
            conn.close()
            params = {"publisher": publisher, "as_of": as_of, "window": 30}
            report["publisher"] = publisher
            report["bi"] = bi_latency(db.dsn, params, repeat)

            if verify:
                incremental = mart_fingerprints(db.dsn)
                _log("full refresh, to compare marts ...")
                report["full_refresh"] = dbt("run", "--full-refresh")
                refreshed = mart_fingerprints(db.dsn)
                report["marts_compared"] = len(refreshed)
                report["marts_differing"] = sorted(
                    t for t in refreshed if incremental.get(t) != refreshed[t]
                )
    finally:
        if keep:
            _log(f"kept database {db.name}")
        else:
            db.drop()
    return report


def print_report(r: dict) -> None:
    full = r["full_build"]
    inc = r["incremental_build"]
    load = r["load"]
    loaded = load["summary"]
    n = r["events"]
    echo = click.echo
    echo(f"\nwarehouse benchmark: {n:,} events over {r['days']} days, as_of {r['as_of']}")
    echo(f"{'figure':<44} {'value':>16}")
    rows = [
        ("generate (events/s)", f"{n / r['generate_seconds']:,.0f}"),
        ("batch files", f"{r['files']} ({_mib(r['bytes'])})"),
        ("load seconds", f"{load['seconds']:,.1f}"),
        ("load events/s", f"{n / load['seconds']:,.0f}"),
        ("loader peak memory, N events", f"{load['peak_mib']:,.0f} MiB"),
        (
            f"loader peak memory, {r['increment']['events']:,} events",
            f"{r['increment']['peak_mib']:,.0f} MiB",
        ),
        ("history ageing seconds (not timed)", f"{r['age_seconds']:,.1f}"),
        ("full dbt build seconds", f"{full['seconds']:,.1f}"),
        ("  models / tests (sum of node seconds)", _split(full)),
        (
            f"+1% load ({r['increment']['events']:,} + {r['increment']['late']:,} late) seconds",
            f"{r['increment']['seconds']:,.1f}",
        ),
        ("realtime cadence seconds", f"{r['realtime_build']['seconds']:,.1f}"),
        ("  models / tests (sum of node seconds)", _split(r["realtime_build"])),
        ("hourly cadence (incremental build) seconds", f"{inc['seconds']:,.1f}"),
        ("  models / tests (sum of node seconds)", _split(inc)),
        ("hourly / full", f"{inc['seconds'] / full['seconds']:.1%}"),
        ("daily cadence seconds", f"{r['daily_build']['seconds']:,.1f}"),
        ("  models / tests (sum of node seconds)", _split(r["daily_build"])),
    ]
    if "full_refresh" in r:
        rows += [
            (
                "dbt run --full-refresh seconds (models only)",
                f"{r['full_refresh']['seconds']:,.1f}",
            ),
            (
                "marts equal after incremental and full refresh",
                f"{r['marts_compared'] - len(r['marts_differing'])}/{r['marts_compared']}",
            ),
        ]
    for label, value in rows:
        echo(f"{label:<44} {value:>16}")
    echo(
        f"\nloaded {loaded['loaded']:,} of {loaded['records_read']:,} records"
        f" ({loaded['quarantined']} quarantined); largest tables after the incremental build:"
    )
    schemas: dict[str, int] = {}
    for table, _, size in r["sizes"]:
        schemas[table.split(".")[0]] = schemas.get(table.split(".")[0], 0) + size
    for table, rows_estimate, size in r["sizes"][:8]:
        echo(f"  {table:<42} {max(rows_estimate, 0):>12,} rows {_mib(size):>11}")
    echo("  " + ", ".join(f"{s} {_mib(b)}" for s, b in schemas.items()))
    stored = sum(schemas.values())
    echo(
        f"  {stored / loaded['loaded']:,.0f} bytes per event stored, "
        + ", ".join(f"{s} {b / loaded['loaded']:,.0f}" for s, b in schemas.items())
        + f"; {stored / r['bytes']:.1f}x the batch files"
    )
    timings = (
        ("full", full),
        ("realtime", r["realtime_build"]),
        ("hourly", inc),
        ("daily", r["daily_build"]),
    )
    echo("\nload average (1 min, before / after) of each build:")
    for label, timing in timings:
        echo(f"  {label:<10} {timing['load_average'][0]:>6.2f} / {timing['load_average'][1]:.2f}")
    for label, timing in timings:
        echo(f"\nslowest nodes, {label} build:")
        for seconds, kind, name in timing["slowest"]:
            echo(f"  {seconds:>8.1f}s  {kind:<8} {name}")
    echo(f"\nBI questions (publisher {r['publisher']}; median ms):")
    echo(f"{'question':<34} {'marts':>8} {'raw':>10} {'speedup':>9} {'same answer':>12}")
    for q in r["bi"]:
        echo(
            f"{QUESTIONS[q['question']]:<34} {q['mart_ms']:>8.2f} {q['raw_ms']:>10.1f}"
            f" {q['speedup']:>8.0f}x {'yes' if q['same_answer'] else 'NO':>12}"
        )


def _split(timing: dict) -> str:
    return f"{timing['model_seconds']:,.0f} / {timing['test_seconds']:,.0f}"


@click.command()
@click.option("--events", default=10_000_000, show_default=True, help="Events to generate.")
@click.option("--quick", is_flag=True, help=f"{QUICK_EVENTS:,} events: the CI smoke run.")
@click.option("--days", default=30, show_default=True, help="Days the events span.")
@click.option("--seed", default=7, show_default=True, help="Generator seed.")
@click.option(
    "--increment", default=0.01, show_default=True, help="Share of N loaded after the build."
)
@click.option(
    "--late", type=int, default=None, help="Late events for built conversations [10% of +1%]."
)
@click.option(
    "--events-per-file",
    default=50_000,
    show_default=True,
    help="Events per batch file (both loads: the loader's memory follows the file size).",
)
@click.option("--repeat", default=5, show_default=True, help="Timed runs per BI query.")
@click.option(
    "--verify/--no-verify",
    default=True,
    show_default=True,
    help="Full refresh after the incremental build and compare every mart.",
)
@click.option("--dsn", default=None, help="Server to use [PG* variables or embedded].")
@click.option("--keep", is_flag=True, help="Keep the scratch database.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Also write JSON.")
def main(
    events: int,
    quick: bool,
    days: int,
    seed: int,
    increment: float,
    late: int | None,
    events_per_file: int,
    repeat: int,
    verify: bool,
    dsn: str | None,
    keep: bool,
    json_path: Path | None,
) -> None:
    """Load N events, time full and incremental dbt builds and the BI questions."""
    if quick:
        events = QUICK_EVENTS
    server = dsn if dsn is not None else _server_dsn()
    report = run(events, days, seed, increment, late, repeat, verify, server, keep, events_per_file)
    print_report(report)
    if json_path:
        json_path.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
