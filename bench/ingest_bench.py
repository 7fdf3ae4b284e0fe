"""Live ingest: `agent-loader serve` + `agent-loader load --follow` under concurrent clients.

    python bench/ingest_bench.py                       # two phases: saturation, then 25,000/s
    python bench/ingest_bench.py --rate 0              # saturation only
    python bench/ingest_bench.py --rate 30000 --seconds 30 --json report.json

Everything runs on this machine: a `serve` subprocess writing into a temporary landing
folder, a `load --follow --move-loaded-to` subprocess loading into a throwaway database, and
the clients (asyncio tasks with aiohttp, in client processes of their own) each posting
50-event `{"events": [...]}` batches and waiting for each answer, every event with an id of
its own. Each `--rate` is one phase, with servers and a database of its own:

  --rate 0 (saturation)   the clients post back to back, as fast as `serve` answers: the
                          most events/s the machine acknowledges. The loader cannot keep up
                          with that on 2 cores, so a backlog grows for as long as the run
                          lasts, and ack-to-raw grows with it: at saturation it measures the
                          run's length, not the live path's latency.
  --rate R (sustained)    the clients pace their batches so that together they offer R
                          events a second (each task posts on a fixed schedule, and at once
                          when it is behind). Ack-to-raw is the live path's latency at that
                          sustained rate; it means something only while the acknowledged
                          rate equals the offered one and the backlog stays near zero.

The default runs both: saturation, then 25,000 events/s offered. For each phase it prints:

  events/s acknowledged   2xx-answered events per second over the timed window
                          (target >= 20,000 on a 2-core machine, clients included);
  answer latency          p50 / p99 of the POST round trip;
  ack-to-raw              p50 / p95 of the time from a 2xx answer to the events being visible
                          in raw.agent_events, for one request in 20 (target <= 2 s, at a
                          sustained rate of at least 20,000 events/s);
  backlog                 acknowledged events not yet in raw when the clients stop, and the
                          seconds until raw holds them all;
  reconciliation          every acknowledged event is in raw exactly once at the end.

Connection: the PG* variables, or the embedded server.
"""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import click
import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.loader_bench import Scratch, _server_dsn

REPO = Path(__file__).resolve().parent.parent
SAMPLE_EVERY = 20


def _event_template() -> bytes:
    """A 50-event body whose ids are `@@-0` ... `@@-49`; `@@` becomes a unique prefix."""
    events = [
        {
            "event_id": f"@@-{i}",
            "conversation_id": "conv-@@",
            "session_id": "sess-1",
            "event_type": "message" if i % 5 else "tool_call",
            "timestamp": "2026-01-05T10:00:00.123456",
            "agent_name": "support-agent",
            "user_id": f"user-{i % 7}",
            "payload": (
                {"text": "How do I reset my password?", "role": "user"}
                if i % 5
                else {"tool_name": "kb_search", "arguments": {"query": "reset password"}}
            ),
            "metadata": {
                "model": "model-1",
                "total_tokens": 120 + i,
                "prompt_tokens": 100,
                "completion_tokens": 20 + i,
                "latency_ms": 340.5,
            },
        }
        for i in range(50)
    ]
    return json.dumps({"events": events}).encode()


def _client_process(
    url: str,
    worker: int,
    tasks: int,
    first_task: int,
    total_tasks: int,
    rate: float,
    seconds: float,
    start_at: float,
    out: multiprocessing.Queue,
    live: multiprocessing.Queue,
) -> None:
    """One client process: `tasks` concurrent posters; reports latencies and its CPU.

    With `rate` (events/s offered by all `total_tasks` together), each task posts one batch
    every `50 * total_tasks / rate` seconds on a fixed schedule, the tasks spread evenly over
    that interval; a task behind its schedule (an answer took longer) posts at once.

    Every SAMPLE_EVERY-th acknowledged batch goes to `live` at once (its last event id and
    when it was acknowledged), so the watcher times it from its acknowledgement.
    """
    import aiohttp

    template = _event_template()

    async def run() -> tuple[int, int, list[float], float]:
        acked = failed = 0
        latencies: list[float] = []
        connector = aiohttp.TCPConnector(limit=tasks)
        async with aiohttp.ClientSession(connector=connector) as session:
            while time.time() < start_at:
                await asyncio.sleep(0.01)
            stop_at = start_at + seconds

            async def poster(task: int) -> None:
                nonlocal acked, failed
                n = 0
                headers = {"Content-Type": "application/json"}
                interval = 50 * total_tasks / rate if rate else 0.0
                due = start_at + (first_task + task) * 50 / rate if rate else 0.0
                while time.time() < stop_at:
                    if rate:
                        wait = due - time.time()
                        if wait > 0:
                            await asyncio.sleep(wait)
                            if time.time() >= stop_at:
                                break
                        due += interval
                    n += 1
                    prefix = f"w{worker}t{task}n{n}"
                    body = template.replace(b"@@", prefix.encode())
                    sent = time.perf_counter()
                    async with session.post(url, data=body, headers=headers) as reply:
                        await reply.read()
                        status = reply.status
                    latencies.append(time.perf_counter() - sent)
                    if status == 200:
                        acked += 50
                        if acked % (50 * SAMPLE_EVERY) == 0:
                            live.put((f"{prefix}-49", time.time()))
                    else:
                        failed += 1

            cpu_started = time.process_time()
            await asyncio.gather(*(poster(task) for task in range(tasks)))
            cpu = time.process_time() - cpu_started
        return acked, failed, latencies, cpu

    out.put(asyncio.run(run()))


def _percentile(ordered: list[float], percent: float) -> float:
    """Nearest-rank percentile of an ascending list: the smallest value with at least
    `percent`% of the values at or below it."""
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def _by_second(timeline: list[tuple[float, float]], start_at: float) -> dict[int, float]:
    """The largest ack-to-raw delay of the samples acknowledged in each second of the run."""
    worst: dict[int, float] = {}
    for acknowledged_at, delay in timeline:
        second = int(acknowledged_at - start_at)
        worst[second] = round(max(worst.get(second, 0.0), delay), 2)
    return dict(sorted(worst.items()))


def _cpu_seconds(*pids: int) -> float:
    """User + system CPU seconds live processes used so far (Linux /proc)."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine used so far (Linux /proc/stat)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _backend_pids(db: Scratch, count: int) -> list[int]:
    """The PostgreSQL backends of `load --follow` (its `count` connections)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with psycopg2.connect(db.dsn) as conn, conn.cursor() as cur:
            cur.execute(
                "select pid from pg_stat_activity where datname = %s"
                " and application_name = 'agent-loader'",
                (db.name,),
            )
            rows = cur.fetchall()
        conn.close()
        if len(rows) == count:
            return [pid for (pid,) in rows]
        time.sleep(0.1)
    raise click.ClickException("load --follow did not connect to the database")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise click.ClickException("serve did not come up")


class RawWatcher(threading.Thread):
    """Polls raw every 20 ms for the sampled event ids the clients send it as they are
    acknowledged; records how long after its acknowledgement each became visible (the
    time after the poll that found it: an upper bound, by at most one poll)."""

    def __init__(self, dsn: str, live: multiprocessing.Queue) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.live = live
        self.pending: dict[str, float] = {}  # event id -> acknowledged at (epoch seconds)
        self.delays: list[float] = []
        self.timeline: list[tuple[float, float]] = []  # (acknowledged at, delay)
        self.done = threading.Event()  # set once the clients are done and raw has caught up

    def _take_new_samples(self) -> None:
        while True:
            try:
                event_id, acknowledged_at = self.live.get_nowait()
            except queue.Empty:
                return
            self.pending[event_id] = acknowledged_at

    def run(self) -> None:
        conn = psycopg2.connect(self.dsn)
        conn.autocommit = True
        while True:
            finishing = self.done.is_set()
            self._take_new_samples()
            if self.pending:
                with conn.cursor() as cur:
                    cur.execute(
                        "select event_id from raw.agent_events where event_id = any(%s)",
                        (list(self.pending),),
                    )
                    seen_at = time.time()
                    for (event_id,) in cur.fetchall():
                        acknowledged_at = self.pending.pop(event_id)
                        self.delays.append(seen_at - acknowledged_at)
                        self.timeline.append((acknowledged_at, seen_at - acknowledged_at))
            if finishing and not self.pending:
                break
            time.sleep(0.02)
        conn.close()


def run_phase(
    server_dsn: str,
    rate: float,
    clients: int,
    processes: int,
    seconds: float,
    commit_interval: float,
    connections: int,
) -> dict:
    """One phase: fresh servers and database, clients offering `rate` events/s (0: flat out)."""
    db = Scratch(server_dsn)
    tmp = Path(tempfile.mkdtemp(prefix="aa-ingest-"))
    landing, archive = tmp / "landing", tmp / "archive"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "AGENT_ANALYTICS_DSN": db.dsn}
    serve_command = [sys.executable, "-m", "loader", "serve", "--landing", str(landing)]
    serve_command += ["--port", str(port)]
    serve = subprocess.Popen(
        [*serve_command, "--commit-interval", str(commit_interval)],
        cwd=REPO,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    _wait_healthy(url)
    follow_command = [sys.executable, "-m", "loader", "load", "--follow", str(landing)]
    follow_command += ["--connections", str(connections)]
    follow = subprocess.Popen(
        [*follow_command, "--move-loaded-to", str(archive), "--dsn", db.dsn],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    backends = _backend_pids(db, connections)
    live: multiprocessing.Queue = multiprocessing.Queue()
    watcher = RawWatcher(db.dsn, live)
    watcher.start()
    try:
        out: multiprocessing.Queue = multiprocessing.Queue()
        start_at = time.time() + 2.0
        per_process = [clients // processes + (i < clients % processes) for i in range(processes)]
        workers = [
            multiprocessing.Process(
                target=_client_process,
                args=(
                    url + "/v1/events",
                    w,
                    n,
                    sum(per_process[:w]),
                    clients,
                    rate,
                    seconds,
                    start_at,
                    out,
                    live,
                ),
            )
            for w, n in enumerate(per_process)
        ]
        for worker in workers:
            worker.start()
        offered = f"{rate:,.0f} events/s offered" if rate else "flat out (saturation)"
        click.echo(
            f"{clients} clients in {processes} processes for {seconds:g} s, {offered} ...",
            err=True,
        )
        pids = {"serve": [serve.pid], "load_follow": [follow.pid], "postgres": backends}
        time.sleep(max(0.0, start_at - time.time()))
        cpu_before = {name: _cpu_seconds(*ids) for name, ids in pids.items()}
        machine_before = _machine_busy_seconds()
        acked = failed = 0
        client_cpu = 0.0
        latencies: list[float] = []
        for _ in workers:
            a, f, lat, used = out.get()
            acked, failed = acked + a, failed + f
            latencies += lat
            client_cpu += used
        for worker in workers:
            worker.join()
        drain_started = time.monotonic()
        backlog = None
        while time.monotonic() - drain_started < 120:
            with psycopg2.connect(db.dsn) as conn, conn.cursor() as cur:
                cur.execute("select count(*) from raw.agent_events")
                in_raw = cur.fetchone()[0]
            if backlog is None:
                backlog = acked - in_raw  # when the clients stopped
            if in_raw >= acked:
                break
            time.sleep(0.2)
        drained = time.monotonic() - drain_started
        cpu = {name: _cpu_seconds(*ids) - cpu_before[name] for name, ids in pids.items()}
        cpu["clients"] = client_cpu
        machine = _machine_busy_seconds() - machine_before
        watcher.done.set()
        watcher.join(60)
        with psycopg2.connect(db.dsn) as conn, conn.cursor() as cur:
            cur.execute("select count(*), count(distinct event_id) from raw.agent_events")
            in_raw, distinct = cur.fetchone()
            cur.execute("select count(*), coalesce(sum(quarantined), 0) from raw.load_batches")
            files, quarantined = cur.fetchone()
            quarantined = int(quarantined)
    finally:
        follow.send_signal(signal.SIGTERM)
        serve.send_signal(signal.SIGTERM)
        follow.wait(60)
        serve.wait(60)
        db.drop()
        shutil.rmtree(tmp, ignore_errors=True)
    latencies.sort()
    delays = sorted(watcher.delays)
    return {
        "phase": f"sustained {rate:g} events/s offered" if rate else "saturation",
        "offered_events_per_second": rate or None,
        "finished_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "clients": clients,
        "commit_interval": commit_interval,
        "connections": connections,
        "client_processes": processes,
        "seconds": seconds,
        "cpus": os.cpu_count(),
        "events_acknowledged": acked,
        "requests_refused": failed,
        "events_per_second": round(acked / seconds),
        "rate_sustained": bool(rate) and acked / seconds >= 0.97 * rate,
        "answer_p50_ms": round(1000 * _percentile(latencies, 50), 1),
        "answer_p99_ms": round(1000 * _percentile(latencies, 99), 1),
        "ack_to_raw_samples": len(delays),
        "ack_to_raw_p50_s": round(_percentile(delays, 50), 3) if delays else None,
        "ack_to_raw_p95_s": round(_percentile(delays, 95), 3) if delays else None,
        "ack_to_raw_by_second": _by_second(watcher.timeline, start_at),
        "backlog_events_at_end": backlog,
        "events_in_raw": in_raw,
        "batch_files": files,
        "quarantined": quarantined,
        "reconciled": in_raw == distinct == acked and quarantined == 0,
        "drain_seconds": round(drained, 2),
        "cpu_seconds": {name: round(value, 2) for name, value in cpu.items()},
        "cpu_us_per_event": {
            name: round(1e6 * value / acked, 1) if acked else None for name, value in cpu.items()
        },
        "machine_busy_cores": round(machine / (seconds + drained), 2),
        "others_busy_cores": round((machine - sum(cpu.values())) / (seconds + drained), 2),
        "load_average_1m": os.getloadavg()[0],
    }


def _summary(report: dict) -> str:
    per_event = report["cpu_us_per_event"]
    rate = report["offered_events_per_second"]
    if rate:
        heading = f"sustained: {rate:,.0f} events/s offered"
        latency_note = "(target <= 2 s at >= 20,000 events/s sustained)"
        if not report["rate_sustained"]:
            heading += (
                " -- NOT SUSTAINED: fewer acknowledged than offered, so this latency is not"
                " the latency at that rate"
            )
    else:
        heading = "saturation: clients post flat out"
        latency_note = "(backlog: grows with the run's length, not a latency)"
    by_second = list(report["ack_to_raw_by_second"].values())
    return (
        f"--- {heading}\n"
        f"acknowledged  {report['events_per_second']:>9,} events/s   (target >= 20,000)\n"
        f"answer        p50 {report['answer_p50_ms']} ms, p99 {report['answer_p99_ms']} ms\n"
        f"ack-to-raw    p50 {report['ack_to_raw_p50_s']} s, p95 {report['ack_to_raw_p95_s']} s"
        f" over {report['ack_to_raw_samples']} samples   {latency_note}\n"
        f"              worst per second of the run: {by_second[:3]} ... {by_second[-3:]}\n"
        f"backlog       {report['backlog_events_at_end']:,} events not in raw when the"
        f" clients stopped; drained in {report['drain_seconds']} s\n"
        f"raw           {report['events_in_raw']:,} events from {report['batch_files']} files;"
        f" acknowledged {report['events_acknowledged']:,};"
        f" {'reconciled' if report['reconciled'] else 'NOT RECONCILED'}\n"
        f"cpu µs/event  {per_event['serve']} serve, {per_event['load_follow']} load --follow,"
        f" {per_event['postgres']} its PostgreSQL backends, {per_event['clients']} clients"
        f" (timed window and drain)\n"
        f"machine       {report['machine_busy_cores']} of {report['cpus']} cores busy,"
        f" {report['others_busy_cores']} by other processes; load average"
        f" {report['load_average_1m']:.2f}"
    )


@click.command()
@click.option(
    "--rate",
    "rates",
    type=float,
    multiple=True,
    default=(0.0, 25_000.0),
    show_default=True,
    help="Events/s the clients offer together, one phase per --rate; 0: flat out (saturation).",
)
@click.option("--clients", default=32, show_default=True, help="Concurrent clients.")
@click.option("--processes", default=2, show_default=True, help="Client processes.")
@click.option("--seconds", default=15.0, show_default=True, help="Timed window of each phase.")
@click.option(
    "--commit-interval",
    default=0.02,
    show_default=True,
    help="serve's --commit-interval (group commit): larger means fewer, bigger files.",
)
@click.option(
    "--connections",
    default=2,
    show_default=True,
    help="load --follow's --connections (files loading at once).",
)
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write figures here.")
def main(
    rates: tuple[float, ...],
    clients: int,
    processes: int,
    seconds: float,
    commit_interval: float,
    connections: int,
    json_path: Path | None,
) -> None:
    """Acknowledged events/s, answer latency and ack-to-raw latency of the live path."""
    server_dsn = _server_dsn()
    phases = []
    for rate in rates:
        report = run_phase(
            server_dsn, rate, clients, processes, seconds, commit_interval, connections
        )
        click.echo(_summary(report))
        phases.append(report)
    if json_path:
        json_path.write_text(json.dumps({"phases": phases}, indent=2))


if __name__ == "__main__":
    main()
