"""PostgreSQL and Spark side by side: the same events loaded and built on each engine.

    python bench/spark_bench.py                      # 1,000,000 events
    python bench/spark_bench.py --events 10000000

Generates N events (both shapes, over three days), then for each engine times the load
(`agent-loader load`, or `load --lake` into a fresh Parquet lake) and a full build of every
model (`dbt seed` + `dbt run`; `--target spark` on the lake, Spark in-process). Tests are
not run: they are the same on both engines and would double the figure. Needs the [spark]
extra and Java 17+; PostgreSQL from the PG* variables or the embedded server.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import click

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

from loader_bench import Scratch, _server_dsn  # noqa: E402


def _run(command: list[str], env: dict[str, str], log: Path) -> float:
    """Run a command in the project folder; its wall-clock seconds. Output goes to `log`."""
    started = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    with log.open("a") as out:
        out.write(f"$ {' '.join(command)}\n{result.stdout}\n{result.stderr[-4000:]}\n")
    if result.returncode != 0:
        raise click.ClickException(f"{' '.join(command[:3])} failed; see {log}")
    return seconds


def _dbt_elapsed(target_dir: Path) -> float:
    """The seconds dbt itself reports for the run (without process and Spark start-up)."""
    return json.loads((target_dir / "run_results.json").read_text())["elapsed_time"]


@click.command()
@click.option("--events", default=1_000_000, show_default=True, help="Events to generate.")
@click.option("--seed", default=7, show_default=True, help="Generator seed.")
@click.option("--keep", is_flag=True, help="Keep the scratch database and the folder.")
def main(events: int, seed: int, keep: bool) -> None:
    """Print load and build seconds for PostgreSQL and Spark on the same events."""
    folder = Path(tempfile.mkdtemp(prefix="aa-spark-bench-"))
    log = folder / "bench.log"
    loader = [sys.executable, "-m", "loader"]
    dbt = str(Path(sys.executable).with_name("dbt"))
    as_of = datetime.now(timezone.utc).date().isoformat()
    server = _server_dsn()
    database = Scratch(server)
    rows = []
    try:
        env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
        landing = folder / "landing"
        click.echo(f"generating {events:,} events ...", err=True)
        _run(
            [
                *loader,
                *("generate", "--out", str(landing), "--events", str(events)),
                *("--days", "3", "--seed", str(seed), "--duplicate-rate", "0.01"),
            ],
            env,
            log,
        )
        pg_env = {**env, "PGDATABASE": database.name}
        lake = folder / "lake"
        spark_env = {**env, "AGENT_ANALYTICS_LAKE": str(lake)}
        for engine, load_args, run_env, target in (
            ("postgresql", ["--dsn", database.dsn], pg_env, []),
            ("spark", ["--lake", str(lake)], spark_env, ["--target", "spark"]),
        ):
            click.echo(f"{engine}: load ...", err=True)
            load_seconds = _run([*loader, "load", *load_args, str(landing)], run_env, log)
            target_dir = folder / f"target-{engine}"
            common = [*target, "--vars", f"{{as_of: '{as_of}'}}", "--target-path", str(target_dir)]
            click.echo(f"{engine}: dbt seed + run ...", err=True)
            seed_seconds = _run([dbt, "seed", *common], run_env, log)
            run_seconds = _run([dbt, "run", *common], run_env, log)
            rows.append(
                (engine, load_seconds, seed_seconds + run_seconds, _dbt_elapsed(target_dir))
            )
    finally:
        if not keep:
            database.drop()
            shutil.rmtree(folder, ignore_errors=True)
    click.echo(f"\n{events:,} events, {os.cpu_count()} CPUs, {as_of}\n")
    click.echo("| engine | load s | events/s | build s (seed + run, wall) | dbt run s (reported) |")
    click.echo("| --- | ---: | ---: | ---: | ---: |")
    for engine, load_seconds, build_seconds, reported in rows:
        click.echo(
            f"| {engine} | {load_seconds:,.1f} | {events / load_seconds:,.0f} |"
            f" {build_seconds:,.1f} | {reported:,.1f} |"
        )


if __name__ == "__main__":
    main()
