"""`marts.operational_health_live` and `agent-loader alerts`: what a fresh read costs.

    python bench/live_mart_bench.py                        # 10,000 / 100,000 / 1,000,000
    python bench/live_mart_bench.py --tail 300000 --repeat 9

The live mart is a view over the rollup raw's triggers keep in each load's transaction, so
an event is in it from the commit of its load: its staleness is the load's (ack-to-mart:
bench/ingest_bench.py --marketplace) plus the time one query takes, and that time grows
with the rollup's rows of the widest window (60 min). For each size, in a scratch database
with the views built by dbt: that many invocations spread over the last hour (200
publishers x 5 agents, 10% errored, inserted into raw so the triggers roll them up), then
the median and max of `--repeat` reads of
the whole view, and of one alerts cycle (rules evaluated, no receiver). Also, a load of 50
invocations and the time until they are counted (commit to visible).

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

PLANT = """
insert into raw.marketplace_events
    (id, event_type, agent_id, publisher_id, tenant_id, event_ts, properties, batch_id,
     loaded_at)
select
    %(prefix)s || n,
    case when n %% 10 = 0 then 'agent_errored' else 'agent_completed' end,
    'agent-' || (n %% 1000),
    'pub-' || (n %% 200),
    'tenant-' || (n %% 50),
    now() - make_interval(secs => 3590.0 * n / %(count)s),
    jsonb_build_object('duration_ms', 100 + n %% 900, 'input_tokens', 10, 'output_tokens', 5),
    1,
    now()
from generate_series(1, %(count)s) as n
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
def main(tails: tuple[int, ...], repeat: int) -> None:
    """Read cost and commit-to-visible time of the live operational mart."""
    db = Scratch(_server_dsn())
    try:
        build_views(db.dsn, Path(tempfile.mkdtemp(prefix="aa-live-bench-")))
        conn = psycopg2.connect(db.dsn)
        planted = 0
        click.echo(
            "| invocations in the last hour | read the view (median / max)"
            " | alerts cycle (median / max) |"
        )
        click.echo("| --- | --- | --- |")
        for tail in sorted(tails):
            with conn.cursor() as cur:
                cur.execute(PLANT, {"prefix": f"t{tail}-", "count": tail - planted})
                cur.execute("analyze raw.marketplace_events")
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
            click.echo(
                f"| {tail:,} | {view[0]:.2f} s / {view[1]:.2f} s"
                f" | {alerts[0]:.2f} s / {alerts[1]:.2f} s |"
            )
        writer = psycopg2.connect(db.dsn)
        with writer.cursor() as cur:
            cur.execute(
                PLANT.replace("'pub-' || (n %% 200)", "'pub-new'"), {"prefix": "new-", "count": 50}
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
