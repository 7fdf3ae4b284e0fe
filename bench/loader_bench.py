"""Loader throughput: `agent-loader load` against the seed's ETL and against a bare COPY.

    python bench/loader_bench.py                # 1,000,000 events
    python bench/loader_bench.py --events 100000

On the same generated batch files, each method loads into a fresh database of its own:

  loader   `agent-loader load DIR` (a subprocess: read, validate, COPY, ledger, quarantine);
  seed     seed 000's `transform_events` + `load_to_warehouse` as written: each collector
           batch of 50 events (the seed's `EventCollector.batch_size`) transformed and
           loaded by its own call, which opens a connection and runs `execute_values`;
           the same transform is applied to marketplace events;
  seed-10k the same code given 10,000-event batches: a generous variant, for reference;
  floor    a bare COPY of the same rows, formatted beforehand and not timed, into a
           temporary table, then `insert ... on conflict do nothing`: the least an
           idempotent load into these tables can cost.

It prints events/s for each, the loader's peak memory, and the ratios loader/floor (target
>= 0.8) and loader/seed (target >= 4). Connection: the PG* variables, or the embedded server.
"""

from __future__ import annotations

import io
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import click
import psycopg2
import psycopg2.extensions
from psycopg2.extras import execute_values

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loader.devtools import embedded
from loader.devtools.generate import Workload, generate
from loader.ingest import warehouse
from loader.ingest.readers import BatchFile


def _server_dsn() -> str:
    return "" if warehouse.libpq_configured() else embedded.start()


class Scratch:
    """A throwaway database with the raw schema."""

    def __init__(self, server_dsn: str) -> None:
        self.server_dsn = server_dsn
        self.name = f"aa_bench_{uuid.uuid4().hex[:10]}"
        admin = psycopg2.connect(server_dsn)
        admin.autocommit = True
        admin.cursor().execute(f"create database {self.name}")
        admin.close()
        self.dsn = psycopg2.extensions.make_dsn(server_dsn, dbname=self.name)
        conn = psycopg2.connect(self.dsn)
        warehouse.migrate(conn)
        conn.close()

    def drop(self) -> None:
        admin = psycopg2.connect(self.server_dsn)
        admin.autocommit = True
        admin.cursor().execute(f"drop database if exists {self.name} with (force)")
        admin.close()


# --- seed 000's ETL, as written in the article (plus the same for marketplace events) -----

SEED_DDL = """
create table agent_events (
    event_id text primary key, conversation_id text, session_id text, event_type text,
    event_ts timestamptz, agent_name text, user_id text, payload jsonb,
    token_count integer, latency_ms double precision
);
create table marketplace_events (
    id text primary key, event_type text, agent_id text, publisher_id text, tenant_id text,
    event_ts timestamptz, properties jsonb
);
"""


def transform_events(raw_events: list[dict]) -> list[tuple]:
    rows = []
    for event in raw_events:
        token_count = event.get("metadata", {}).get("total_tokens", 0)
        latency_ms = event.get("metadata", {}).get("latency_ms", 0)
        rows.append(
            (
                event["event_id"],
                event["conversation_id"],
                event["session_id"],
                event["event_type"],
                event["timestamp"],
                event["agent_name"],
                event["user_id"],
                json.dumps(event["payload"]),
                token_count,
                latency_ms,
            )
        )
    return rows


def transform_marketplace(raw_events: list[dict]) -> list[tuple]:
    return [
        (
            e["id"],
            e["event_type"],
            e["agent_id"],
            e["publisher_id"],
            e["tenant_id"],
            e["timestamp"],
            json.dumps(e["properties"]),
        )
        for e in raw_events
    ]


def load_to_warehouse(rows: list[tuple], market_rows: list[tuple], conn_string: str) -> int:
    """The seed's `load_to_warehouse`: a connection per call, `execute_values`, commit."""
    conn = psycopg2.connect(conn_string)
    cur = conn.cursor()
    execute_values(
        cur,
        """INSERT INTO agent_events
        (event_id, conversation_id, session_id, event_type,
        event_ts, agent_name, user_id, payload, token_count, latency_ms)
        VALUES %s
        ON CONFLICT (event_id) DO NOTHING""",
        rows,
    )
    execute_values(
        cur,
        """INSERT INTO marketplace_events
        (id, event_type, agent_id, publisher_id, tenant_id, event_ts, properties)
        VALUES %s ON CONFLICT (id) DO NOTHING""",
        market_rows,
    )
    conn.commit()
    inserted = cur.rowcount
    cur.close()
    conn.close()
    return inserted


def _events(files: list[Path]):
    for path in files:
        with BatchFile(path) as batch:
            for record in batch.records():
                yield record.value


def run_seed(dsn: str, files: list[Path], batch_size: int) -> None:
    """Seed 000's ETL: each collector batch is transformed and loaded by its own call."""
    conn = psycopg2.connect(dsn)
    conn.cursor().execute(SEED_DDL)
    conn.commit()
    conn.close()
    batch: list[dict] = []
    for event in _events(files):
        batch.append(event)
        if len(batch) == batch_size:
            _seed_batch(dsn, batch)
            batch = []
    if batch:
        _seed_batch(dsn, batch)


def _seed_batch(dsn: str, batch: list[dict]) -> None:
    agent = [e for e in batch if "event_id" in e]
    market = [e for e in batch if "event_id" not in e]
    load_to_warehouse(transform_events(agent), transform_marketplace(market), dsn)


# --- the floor: a bare COPY of pre-formatted rows ----------------------------------------


def _copy_text(value: object) -> str:
    if value is None:
        return "\\N"
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def format_floor_rows(files: list[Path]) -> tuple[bytes, bytes]:
    agent, market = io.BytesIO(), io.BytesIO()
    for e in _events(files):
        if "event_id" in e:
            keys = (
                "event_id",
                "conversation_id",
                "session_id",
                "event_type",
                "timestamp",
                "agent_name",
                "user_id",
                "payload",
                "metadata",
            )
            agent.write(("\t".join(_copy_text(e[k]) for k in keys) + "\n").encode())
        else:
            keys = (
                "id",
                "event_type",
                "agent_id",
                "publisher_id",
                "tenant_id",
                "timestamp",
                "properties",
            )
            market.write(("\t".join(_copy_text(e[k]) for k in keys) + "\n").encode())
    return agent.getvalue(), market.getvalue()


def run_floor(dsn: str, agent_rows: bytes, market_rows: bytes) -> None:
    conn = psycopg2.connect(dsn)
    cur = conn.cursor()
    cur.execute(
        "insert into raw.load_batches (path, status, loader_version, started_at,"
        " finished_at) values ('floor', 'failed', 'bench', now(), now()) returning batch_id"
    )
    batch_id = cur.fetchone()[0]
    cur.execute(
        "create temp table t_agent (event_id text, conversation_id text, session_id text,"
        " event_type text, event_ts timestamptz, agent_name text, user_id text, payload jsonb,"
        " metadata jsonb) on commit drop;"
        "create temp table t_market (id text, event_type text, agent_id text, publisher_id text,"
        " tenant_id text, event_ts timestamptz, properties jsonb) on commit drop"
    )
    cur.copy_expert("copy t_agent from stdin", io.BytesIO(agent_rows))
    cur.copy_expert("copy t_market from stdin", io.BytesIO(market_rows))
    cur.execute(
        "insert into raw.agent_events select *, %s, now() from t_agent"
        " on conflict (event_id) do nothing",
        (batch_id,),
    )
    cur.execute(
        "insert into raw.marketplace_events select *, %s, now() from t_market"
        " on conflict (id) do nothing",
        (batch_id,),
    )
    conn.commit()
    conn.close()


def run_loader(dsn: str, folder: Path) -> float:
    """Run `agent-loader load` as a subprocess; returns its peak RSS in MiB."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(
        [sys.executable, "-m", "loader", "load", str(folder), "--dsn", dsn, "--json"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(peak, before) / 1024


def timed(function, *args):
    started = time.perf_counter()
    value = function(*args)
    return time.perf_counter() - started, value


@click.command()
@click.option("--events", default=1_000_000, show_default=True, help="Events to generate.")
@click.option("--seed", default=7, show_default=True, help="Generator seed.")
@click.option("--skip-seed", is_flag=True, help="Leave out the (slow) seed ETL run.")
def main(events: int, seed: int, skip_seed: bool) -> None:
    """Time agent-loader load against the seed's ETL and a bare COPY floor."""
    server = _server_dsn()
    with tempfile.TemporaryDirectory(prefix="aa-bench-") as tmp:
        folder = Path(tmp)
        click.echo(f"generating {events:,} events ...", err=True)
        written = generate(Workload(events=events, seed=seed, events_per_file=250_000), folder)
        size = sum(path.stat().st_size for path in written.files)
        click.echo(
            f"{written.events:,} events in {len(written.files)} files, {size / 2**20:,.0f} MiB",
            err=True,
        )
        results: dict[str, float] = {}

        db = Scratch(server)
        click.echo("loader ...", err=True)
        seconds, peak_mib = timed(run_loader, db.dsn, folder)
        results["loader"] = seconds
        db.drop()

        db = Scratch(server)
        click.echo("floor (formatting rows, not timed) ...", err=True)
        agent_rows, market_rows = format_floor_rows(written.files)
        click.echo("floor ...", err=True)
        results["floor"], _ = timed(run_floor, db.dsn, agent_rows, market_rows)
        del agent_rows, market_rows
        db.drop()

        if not skip_seed:
            for name, batch_size in (("seed", 50), ("seed-10k", 10_000)):
                db = Scratch(server)
                click.echo(f"{name} ETL ...", err=True)
                results[name], _ = timed(run_seed, db.dsn, written.files, batch_size)
                db.drop()

    n = written.events
    click.echo(f"\n{'method':<10} {'seconds':>9} {'events/s':>12}")
    for name, seconds in results.items():
        click.echo(f"{name:<10} {seconds:>9.2f} {n / seconds:>12,.0f}")
    click.echo(f"\nloader peak memory: {peak_mib:,.0f} MiB")
    click.echo(f"loader / floor: {results['floor'] / results['loader']:.2f}x  (target >= 0.8)")
    if "seed" in results:
        click.echo(f"loader / seed:  {results['seed'] / results['loader']:.2f}x  (target >= 4)")
        click.echo(f"loader / seed-10k: {results['seed-10k'] / results['loader']:.2f}x")


if __name__ == "__main__":
    main()
