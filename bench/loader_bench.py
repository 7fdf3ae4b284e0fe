"""Loader throughput against the idempotent COPY floor and the reference ETL (issue 17).

    python bench/loader_bench.py                       # 300,000 and 1,000,000 events
    python bench/loader_bench.py --events 300000       # one size (repeatable)
    python bench/loader_bench.py --events 300000 --redact mask   # the loader masking PII

For each size it generates that many conversation events (the conversation-analytics
reference's shape) into one NDJSON file and loads the same file three ways, each into a
fresh database of its own, one after the other on the same server:

  loader     `agent-loader load FILE --json` as a subprocess: start-up, checksum, read,
             validate against the whole contract, COPY, insert into raw, ledger;
  floor      the same events formatted beforehand (not timed) as rows of the reference's
             `agent_events` table (its ten columns), COPYed into a temporary table, then
             `insert ... on conflict (event_id) do nothing`, one transaction: the least an
             idempotent load of these events can cost the server;
  reference  the reference's `transform_events` + `execute_values` (its default page size,
             100) on one connection, one transaction, after `json.loads` of each line.

It prints events/s for each, loader / floor (target >= 0.8) and loader / reference
(target >= 4), the loader's peak RSS at 10,000 events and at the largest size, the machine,
the load average and the commit. Connection: the PG* variables, or the embedded server.
"""

from __future__ import annotations

import io
import json
import os
import platform
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

REPO = Path(__file__).resolve().parent.parent


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


# --- the conversation-analytics reference: its table and its ETL -------------------------

REFERENCE_DDL = """
create table agent_events (
    event_id text primary key, conversation_id text, session_id text, event_type text,
    event_ts timestamptz, agent_name text, user_id text, payload jsonb,
    token_count integer, latency_ms double precision
)
"""


def transform_events(raw_events: list[dict]) -> list[tuple]:
    """The reference's `transform_events`, as written."""
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


def run_reference(dsn: str, path: Path) -> None:
    """Decode the file, `transform_events`, `execute_values` (page size 100), one commit."""
    conn = psycopg2.connect(dsn)
    cur = conn.cursor()
    cur.execute(REFERENCE_DDL)
    conn.commit()
    with open(path, encoding="utf-8") as handle:
        events = [json.loads(line) for line in handle if line.strip()]
    execute_values(
        cur,
        """INSERT INTO agent_events
        (event_id, conversation_id, session_id, event_type,
        event_ts, agent_name, user_id, payload, token_count, latency_ms)
        VALUES %s
        ON CONFLICT (event_id) DO NOTHING""",
        transform_events(events),
    )
    conn.commit()
    conn.close()


# --- the floor: a bare COPY of pre-formatted rows, then an idempotent insert -------------


def _copy_text(value: object) -> str:
    if value is None:
        return "\\N"
    text = value if isinstance(value, str) else json.dumps(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def format_floor_rows(path: Path) -> bytes:
    """The reference's ten columns per event, as COPY text (not timed)."""
    rows = io.BytesIO()
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                [row] = transform_events([json.loads(line)])
                rows.write(("\t".join(_copy_text(value) for value in row) + "\n").encode())
    return rows.getvalue()


def run_floor(dsn: str, rows: bytes) -> None:
    conn = psycopg2.connect(dsn)
    cur = conn.cursor()
    cur.execute(REFERENCE_DDL)
    conn.commit()
    cur.execute("create temporary table t (like agent_events) on commit drop")
    cur.copy_expert("copy t from stdin", io.BytesIO(rows))
    cur.execute("insert into agent_events select * from t on conflict (event_id) do nothing")
    conn.commit()
    conn.close()


# --- the loader -------------------------------------------------------------------------


def _peak_rss_mib(pid: int) -> float | None:
    """The process's own peak RSS so far (VmHWM), None once it has exited."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def run_loader(
    dsn: str, path: Path, report: Path, redact: str = "none"
) -> tuple[float, float, list]:
    """`agent-loader load` as a subprocess: (seconds, peak RSS in MiB, its JSON report).

    `redact`: the load's `--redact` mode (`mask` or `drop` time the PII masking too).

    The peak is the child's VmHWM, polled every 10 ms while it runs: `ru_maxrss` from
    `wait4` would count this process's memory too (the kernel carries the parent's peak
    into a spawned child's).
    """
    started = time.perf_counter()
    descriptor = os.open(report, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        pid = os.posix_spawn(
            sys.executable,
            [
                *(sys.executable, "-m", "loader", "load", str(path), "--dsn", dsn, "--json"),
                *(("--redact", redact) if redact != "none" else ()),
            ],
            os.environ,
            file_actions=[(os.POSIX_SPAWN_DUP2, descriptor, 1)],
        )
    finally:
        os.close(descriptor)
    peak = 0.0
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        peak = max(peak, _peak_rss_mib(pid) or 0.0)
        time.sleep(0.01)
    seconds = time.perf_counter() - started
    if status != 0:
        raise click.ClickException(f"agent-loader load failed (wait status {status})")
    return seconds, peak, json.loads(report.read_text())


# --- where the time goes: CPU per record on each side ------------------------------------


def _backend_cpu(conn: psycopg2.extensions.connection) -> float | None:
    """CPU seconds the connection's server process has used (None: server not local)."""
    try:
        fields = Path(f"/proc/{conn.get_backend_pid()}/stat").read_text().rsplit(")", 1)[1]
    except OSError:
        return None
    utime, stime = fields.split()[11:13]
    return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")


def stage_costs(server: str, path: Path, n: int) -> list[tuple[str, float]]:
    """CPU microseconds per record: the loader's Python stages, both sides of a load."""
    from loader.ingest.contract import check_event_json
    from loader.ingest.load import RowStream, load_file
    from loader.ingest.readers import BatchFile

    costs = []
    started = time.process_time()
    with BatchFile(path) as batch:
        for _ in batch.records(decode=False):  # streamed, as a load reads them
            pass
    costs.append(("python: read and split lines", time.process_time() - started))
    with BatchFile(path) as batch:
        records = list(batch.records(decode=False))
    started = time.process_time()
    for record in records:
        check_event_json(record.raw)
    costs.append(("python: validate (pydantic-core, the contract)", time.process_time() - started))
    started = time.process_time()
    stream = RowStream(records)  # the load's own way from records to COPY segments
    for _ in stream.segments():
        pass
    stream.close()
    validate_and_format = time.process_time() - started
    costs.append(("python: format COPY rows", validate_and_format - costs[-1][1]))
    del records

    db = Scratch(server)
    conn = psycopg2.connect(db.dsn)
    server_before, started = _backend_cpu(conn), time.process_time()
    load_file(conn, path)
    python, server_after = time.process_time() - started, _backend_cpu(conn)
    conn.close()
    db.drop()
    costs.append(("python: whole load in process (both threads)", python))
    if server_before is not None and server_after is not None:
        costs.append(("server: loader's COPY into raw", server_after - server_before))

    rows = format_floor_rows(path)
    db = Scratch(server)
    conn = psycopg2.connect(db.dsn)
    conn.cursor().execute(REFERENCE_DDL)
    conn.commit()
    before = _backend_cpu(conn)
    cur = conn.cursor()
    cur.execute("create temporary table t (like agent_events) on commit drop")
    cur.copy_expert("copy t from stdin", io.BytesIO(rows))
    cur.execute("insert into agent_events select * from t on conflict (event_id) do nothing")
    conn.commit()
    after = _backend_cpu(conn)
    conn.close()
    db.drop()
    if before is not None and after is not None:
        costs.append(("server: floor's COPY + insert", after - before))
    return [(name, 1e6 * seconds / n) for name, seconds in costs]


def _generate(events: int, folder: Path) -> tuple[Path, int]:
    """About `events` conversation events in one NDJSON file."""
    workload = Workload(events=events, seed=7, marketplace_share=0.0, events_per_file=10**9)
    written = generate(workload, folder)
    return written.files[0], written.events


def timed(function, *args) -> float:
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"


def _machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}"


def _server_version(dsn: str) -> str:
    conn = psycopg2.connect(dsn)
    version = conn.server_version
    conn.close()
    return f"PostgreSQL {version // 10000}.{version % 10000}"


@click.command()
@click.option(
    "--events",
    "sizes",
    multiple=True,
    type=int,
    default=(300_000, 1_000_000),
    show_default=True,
    help="Events per run (repeat for several sizes).",
)
@click.option("--skip-reference", is_flag=True, help="Leave out the (slow) reference ETL.")
@click.option(
    "--stages",
    is_flag=True,
    help="Also print CPU microseconds per record for each stage, on both sides.",
)
@click.option(
    "--redact",
    type=click.Choice(["none", "mask", "drop"]),
    default="none",
    show_default=True,
    help="Load with this --redact mode (the floor and the reference do no masking).",
)
def main(sizes: tuple[int, ...], skip_reference: bool, stages: bool, redact: str) -> None:
    """Time agent-loader load against the idempotent COPY floor and the reference ETL."""
    server = _server_dsn()
    click.echo(f"machine: {_machine()}, Python {platform.python_version()}")
    click.echo(f"server: {_server_version(server)}; commit {_commit()}")
    click.echo(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    peaks: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="aa-bench-") as tmp:
        for size in sorted({10_000, *sizes}):
            folder = Path(tmp) / str(size)
            click.echo(f"\ngenerating {size:,} events ...", err=True)
            path, n = _generate(size, folder)
            db = Scratch(server)
            seconds, peaks[n], report = run_loader(db.dsn, path, folder / "report.json", redact)
            db.drop()
            loaded = report[0]["loaded"]
            if size not in sizes:
                continue
            rows = format_floor_rows(path)
            db = Scratch(server)
            floor = timed(run_floor, db.dsn, rows)
            db.drop()
            del rows
            reference = None
            if not skip_reference:
                db = Scratch(server)
                reference = timed(run_reference, db.dsn, path)
                db.drop()
            mib = path.stat().st_size / 2**20
            click.echo(f"\n{n:,} events, one NDJSON file of {mib:,.0f} MiB (loaded: {loaded})")
            click.echo(f"{'method':<10} {'seconds':>9} {'events/s':>12}")
            for name, value in (("loader", seconds), ("floor", floor), ("reference", reference)):
                if value is not None:
                    click.echo(f"{name:<10} {value:>9.2f} {n / value:>12,.0f}")
            click.echo(f"loader / floor:     {floor / seconds:.2f}x  (target >= 0.8)")
            if reference is not None:
                click.echo(f"loader / reference: {reference / seconds:.2f}x  (target >= 4)")
            click.echo(f"load average now: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            if stages:
                click.echo("CPU per record (microseconds; the server's only when it runs here):")
                for name, micros in stage_costs(server, path, n):
                    click.echo(f"  {name:<50} {micros:6.2f}")
    shown = ", ".join(f"{mib:,.0f} MiB at {n:,} events" for n, mib in peaks.items())
    click.echo(f"\nloader peak RSS: {shown}")


if __name__ == "__main__":
    main()
