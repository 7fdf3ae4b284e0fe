"""Build time and size of the dashboards sites on an existing warehouse.

    python bench/dashboards_bench.py --dsn URL                      # the operator's site
    python bench/dashboards_bench.py --dsn URL --as PUBLISHER_LOGIN  # and a publisher's

The warehouse is any database the demo built (`agent-loader demo --events N --dsn URL`); a
publisher login is made with `agent-loader roles`, `grant-publisher` and a `dbt build` under
that role prefix (bench/README.md). For each site (the connection's user's, then each --as
login's) it runs `agent-loader dashboards build`'s function three times into a temporary
folder and prints the median build seconds (queries included), the site's bytes (and its data
files' bytes), the events in raw, the load average and the commit.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import click
import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loader.dashboards import build as sites

RUNS = 3


def raw_events(dsn: str) -> int:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "select (select count(*) from raw.marketplace_events)"
                " + (select count(*) from raw.agent_events)"
            )
            row = cur.fetchone()
            return int(row[0]) if row else 0
    finally:
        conn.close()


def measure(dsn: str, login: str | None) -> str:
    seconds, result = [], None
    with tempfile.TemporaryDirectory() as folder:
        for run in range(RUNS):
            result = sites.build(dsn, login, Path(folder) / f"site-{run}")
            seconds.append(result.build_seconds)
        assert result is not None
        data = sum(path.stat().st_size for path in (result.out / "data").glob("*.json"))
    return (
        f"{result.audience:<9} {result.login:<24} {statistics.median(seconds):8.2f} s"
        f" {result.size_bytes / 1e6:8.2f} MB {data / 1e3:10.1f} kB"
    )


@click.command()
@click.option("--dsn", required=True, help="The warehouse (a database the demo built).")
@click.option("--as", "logins", multiple=True, help="Also build this login's site.")
def main(dsn: str, logins: tuple[str, ...]) -> None:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    click.echo(
        f"{raw_events(dsn):,} events in raw; load average {os.getloadavg()[0]:.2f} on"
        f" {os.cpu_count()} cores; commit {commit}; median of {RUNS} builds"
    )
    click.echo(f"{'site':<9} {'login':<24} {'build':>10} {'size':>11} {'data files':>13}")
    for login in (None, *logins):
        click.echo(measure(dsn, login))


if __name__ == "__main__":
    main()
