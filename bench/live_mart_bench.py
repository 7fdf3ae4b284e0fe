"""`marts.operational_health_live` and `agent-loader alerts`: what a fresh read costs.

    python bench/live_mart_bench.py                        # 10,000 / 100,000 / 1,000,000
    python bench/live_mart_bench.py --tail 300000 --repeat 9
    python bench/live_mart_bench.py --tail 15000000 --agents 5000 --durations 50 --rollup-only

The live mart is a view over the rollup raw's triggers keep in each load's transaction, so
an event is in it from the commit of its load: its staleness is the load's (ack-to-mart:
bench/ingest_bench.py --marketplace) plus the time one query takes, and that time grows
with the rollup's rows of the widest window (60 min). For each size, in a scratch database
with the views built by dbt: that many invocations spread over the last hour (`--agents`
agents of 200 publishers, each cycling through `--durations` whole milliseconds from 100 ms,
10% errored, inserted into raw so the triggers roll them up), then the median and max of
`--repeat` reads of the whole view, and of one alerts cycle (rules evaluated, no receiver).
Also, a load of 50 invocations and the time until they are counted (commit to visible).

`--rollup-only` rolls the planted invocations up with the triggers' own statement
(`raw.marketplace_live_rollup_merge`) without writing them to raw: the rollup is the same,
and so is every read, but millions of invocations plant in a minute, not in an hour, which
is what it takes to fill every agent's bins in every minute (the rollup's rows of the
60-minute window are at most agents x bins x 61).

Connection: the PG* variables, or the embedded server.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.loader_bench import Scratch, _server_dsn
from loader.alerts import deliver, service
from loader.alerts.routes import Routes

REPO = Path(__file__).resolve().parent.parent

# `count` invocations over the last hour: agent n mod `agents`, its duration cycling through
# `durations` whole milliseconds (one step each time n comes back to the agent)
INVOCATIONS = """
select
    %(prefix)s || n as id,
    case when n %% 10 = 0 then 'agent_errored' else 'agent_completed' end as event_type,
    'agent-' || (n %% %(agents)s) as agent_id,
    'pub-' || (n %% 200) as publisher_id,
    'tenant-' || (n %% 50) as tenant_id,
    now() - make_interval(secs => 3590.0 * n / %(count)s) as event_ts,
    jsonb_build_object(
        'duration_ms', 100 + n / %(agents)s %% %(durations)s, 'input_tokens', 10,
        'output_tokens', 5
    ) as properties,
    1 as batch_id,
    now() as loaded_at
from generate_series(1, %(count)s) as n
"""
PLANT = f"insert into raw.marketplace_events {INVOCATIONS}"
# the same invocations through the insert trigger's statement, not stored in raw
PLANT_ROLLUP_ONLY = """
select raw.marketplace_live_rollup_merge('(' || %(invocations)s || ') as planted')
"""


def build_views(dsn: str, folder: Path) -> None:
    """The rules seed and the live views, by dbt, in the scratch database."""
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    env["PGDATABASE"] = psycopg2.extensions.parse_dsn(dsn)["dbname"]
    dbt = str(Path(sys.executable).with_name("dbt"))
    builds = (["seed", "--select", "alert_rules"], ["run", "--select", "+operational_health_live"])
    for args in builds:
        subprocess.run(
            [dbt, *args, "--target-path", str(folder), "--log-path", str(folder / "logs")],
            cwd=REPO, env=env, check=True, capture_output=True,
        )  # fmt: skip


def timed(action, repeat: int) -> tuple[float, float]:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs), max(runs)


@click.command()
@click.option("--tail", "tails", multiple=True, type=int, default=(10_000, 100_000, 1_000_000))
@click.option("--repeat", default=5, show_default=True)
@click.option("--agents", default=1000, show_default=True, help="Agents (of 200 publishers).")
@click.option("--durations", default=900, show_default=True, help="Distinct durations (ms).")
@click.option(
    "--rollup-only", is_flag=True, help="Roll the invocations up without writing them to raw."
)
def main(
    tails: tuple[int, ...], repeat: int, agents: int, durations: int, rollup_only: bool
) -> None:
    """Read cost and commit-to-visible time of the live operational mart."""
    db = Scratch(_server_dsn())
    try:
        build_views(db.dsn, Path(tempfile.mkdtemp(prefix="aa-live-bench-")))
        conn = psycopg2.connect(db.dsn)
        planted = 0
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        click.echo(
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit},"
            f" load average {os.getloadavg()[0]:.1f}; {agents:,} agents, {durations} durations"
            + (", rolled up only" if rollup_only else "")
        )
        click.echo(
            "| invocations in the last hour | rollup rows | read the view (median / max)"
            " | alerts cycle (median / max) |"
        )
        click.echo("| --- | --- | --- | --- |")
        for tail in sorted(tails):
            params = {
                "prefix": f"t{tail}-",
                "count": tail - planted,
                "agents": agents,
                "durations": durations,
            }
            with conn.cursor() as cur:
                # planting only (the reads keep the server's settings): sort in memory
                cur.execute("set local work_mem = '256MB'")
                if rollup_only:
                    invocations = cur.mogrify(INVOCATIONS, params).decode()
                    cur.execute(PLANT_ROLLUP_ONLY, {"invocations": invocations})
                    [[statement]] = cur.fetchall()
                    cur.execute(statement)
                else:
                    cur.execute(PLANT, params)
                cur.execute("analyze raw.marketplace_events")
                cur.execute("analyze raw.marketplace_live_rollup")
            conn.commit()
            planted = tail

            def read() -> None:
                with conn.cursor() as cur:
                    cur.execute("select * from marts.operational_health_live")
                    cur.fetchall()
                conn.commit()

            def cycle() -> None:
                service.run_cycle(conn, Routes({}), deliver.Policy(), show=lambda line: None)

            view = timed(read, repeat)
            alerts = timed(cycle, repeat)
            with conn.cursor() as cur:
                cur.execute("select count(*) from raw.marketplace_live_rollup")
                [[rows]] = cur.fetchall()
            conn.commit()
            click.echo(
                f"| {tail:,} | {rows:,} | {view[0]:.2f} s / {view[1]:.2f} s"
                f" | {alerts[0]:.2f} s / {alerts[1]:.2f} s |"
            )
        writer = psycopg2.connect(db.dsn)
        with writer.cursor() as cur:
            cur.execute(
                PLANT.replace("'pub-' || (n %% 200)", "'pub-new'"),
                {"prefix": "new-", "count": 50, "agents": agents, "durations": durations},
            )
        writer.commit()
        committed = time.perf_counter()
        with conn.cursor() as cur:
            cur.execute(
                "select sum(invocations) from marts.operational_health_live"
                " where publisher_id = 'pub-new' and window_minutes = 60"
            )
            counted = cur.fetchone()[0]
        conn.commit()
        click.echo(
            f"commit to visible: {time.perf_counter() - committed:.2f} s"
            f" (counted {counted or 0} of 50 on the first read after the commit)"
        )
        writer.close()
        conn.close()
    finally:
        db.drop()


if __name__ == "__main__":
    main()
