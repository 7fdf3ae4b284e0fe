"""Live ingest: `agent-loader serve` + `agent-loader load --follow` under concurrent clients.

    python bench/ingest_bench.py                       # 32 clients, 15 s
    python bench/ingest_bench.py --clients 64 --seconds 30 --json report.json

Everything runs on this machine: a `serve` subprocess writing into a temporary landing
folder, a `load --follow --move-loaded-to` subprocess loading into a throwaway database, and
the clients (asyncio tasks with aiohttp, in client processes of their own) each posting
50-event `{"events": [...]}` batches as fast as the server answers, every event with an id
of its own. It prints:

  events/s acknowledged   2xx-answered events per second over the timed window
                          (target >= 20,000 on a 2-core machine, clients included);
  answer latency          p50 / p99 of the POST round trip;
  ack-to-raw              p95 of the time from a 2xx answer to the events being visible in
                          raw.agent_events, for one request in 20 (target <= 2 s);
  reconciliation          every acknowledged event is in raw exactly once at the end.

Connection: the PG* variables, or the embedded server.
"""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
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
    url: str, worker: int, tasks: int, seconds: float, start_at: float, out: multiprocessing.Queue
) -> None:
    """One client process: `tasks` concurrent posters; reports latencies and samples."""
    import aiohttp

    template = _event_template()

    async def run() -> tuple[int, int, list[float], list[tuple[str, float]]]:
        acked = failed = 0
        latencies: list[float] = []
        samples: list[tuple[str, float]] = []
        connector = aiohttp.TCPConnector(limit=tasks)
        async with aiohttp.ClientSession(connector=connector) as session:
            while time.time() < start_at:
                await asyncio.sleep(0.01)
            stop_at = start_at + seconds

            async def poster(task: int) -> None:
                nonlocal acked, failed
                n = 0
                headers = {"Content-Type": "application/json"}
                while time.time() < stop_at:
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
                            samples.append((f"{prefix}-49", time.time()))
                    else:
                        failed += 1

            await asyncio.gather(*(poster(task) for task in range(tasks)))
        return acked, failed, latencies, samples

    out.put(asyncio.run(run()))


def _percentile(ordered: list[float], percent: float) -> float:
    """Nearest-rank percentile of an ascending list: the smallest value with at least
    `percent`% of the values at or below it."""
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a live process used so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    """Polls raw for sampled event ids; records when each became visible."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.pending: dict[str, float] = {}  # event id -> acknowledged at (epoch seconds)
        self.delays: list[float] = []
        self.lock = threading.Lock()
        self.done = threading.Event()

    def add(self, samples: list[tuple[str, float]]) -> None:
        with self.lock:
            self.pending.update(samples)

    def run(self) -> None:
        conn = psycopg2.connect(self.dsn)
        conn.autocommit = True
        while not self.done.is_set() or self.pending:
            with self.lock:
                ids = list(self.pending)
            if ids:
                with conn.cursor() as cur:
                    cur.execute(
                        "select event_id from raw.agent_events where event_id = any(%s)", (ids,)
                    )
                    seen_at = time.time()
                    with self.lock:
                        for (event_id,) in cur.fetchall():
                            self.delays.append(seen_at - self.pending.pop(event_id))
            time.sleep(0.02)
        conn.close()


@click.command()
@click.option("--clients", default=32, show_default=True, help="Concurrent clients.")
@click.option("--processes", default=2, show_default=True, help="Client processes.")
@click.option("--seconds", default=15.0, show_default=True, help="Timed window.")
@click.option(
    "--commit-interval",
    default=0.05,
    show_default=True,
    help="serve's --commit-interval (group commit): larger means fewer, bigger files.",
)
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write figures here.")
def main(
    clients: int, processes: int, seconds: float, commit_interval: float, json_path: Path | None
) -> None:
    """Acknowledged events/s, answer latency and ack-to-raw latency of the live path."""
    server_dsn = _server_dsn()
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
    follow = subprocess.Popen(
        [*follow_command, "--move-loaded-to", str(archive), "--dsn", db.dsn],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    watcher = RawWatcher(db.dsn)
    watcher.start()
    try:
        out: multiprocessing.Queue = multiprocessing.Queue()
        start_at = time.time() + 2.0
        per_process = [clients // processes + (i < clients % processes) for i in range(processes)]
        workers = [
            multiprocessing.Process(
                target=_client_process,
                args=(url + "/v1/events", w, n, seconds, start_at, out),
            )
            for w, n in enumerate(per_process)
        ]
        for worker in workers:
            worker.start()
        click.echo(f"{clients} clients in {processes} processes for {seconds:g} s ...", err=True)
        acked = failed = 0
        latencies: list[float] = []
        for _ in workers:
            a, f, lat, samples = out.get()
            acked, failed = acked + a, failed + f
            latencies += lat
            watcher.add(samples)
        for worker in workers:
            worker.join()
        drain_started = time.monotonic()
        while time.monotonic() - drain_started < 120:
            with psycopg2.connect(db.dsn) as conn, conn.cursor() as cur:
                cur.execute("select count(*) from raw.agent_events")
                in_raw = cur.fetchone()[0]
            if in_raw >= acked:
                break
            time.sleep(0.2)
        cpu = {"serve": _cpu_seconds(serve.pid), "load_follow": _cpu_seconds(follow.pid)}
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
    latencies.sort()
    delays = sorted(watcher.delays)
    report = {
        "clients": clients,
        "commit_interval": commit_interval,
        "client_processes": processes,
        "seconds": seconds,
        "cpus": os.cpu_count(),
        "events_acknowledged": acked,
        "requests_refused": failed,
        "events_per_second": round(acked / seconds),
        "answer_p50_ms": round(1000 * _percentile(latencies, 50), 1),
        "answer_p99_ms": round(1000 * _percentile(latencies, 99), 1),
        "ack_to_raw_samples": len(delays),
        "ack_to_raw_p50_s": round(_percentile(delays, 50), 3) if delays else None,
        "ack_to_raw_p95_s": round(_percentile(delays, 95), 3) if delays else None,
        "events_in_raw": in_raw,
        "batch_files": files,
        "quarantined": quarantined,
        "reconciled": in_raw == distinct == acked and quarantined == 0,
        "cpu_seconds": {name: round(value, 1) for name, value in cpu.items()},
        "load_average_1m": os.getloadavg()[0],
    }
    click.echo(
        f"acknowledged  {report['events_per_second']:>9,} events/s   (target >= 20,000)\n"
        f"answer        p50 {report['answer_p50_ms']} ms, p99 {report['answer_p99_ms']} ms\n"
        f"ack-to-raw    p95 {report['ack_to_raw_p95_s']} s over {len(delays)} samples"
        "   (target <= 2 s)\n"
        f"raw           {in_raw:,} events from {files} files; acknowledged {acked:,};"
        f" {'reconciled' if report['reconciled'] else 'NOT RECONCILED'}\n"
        f"cpu           serve {report['cpu_seconds']['serve']} s, load --follow"
        f" {report['cpu_seconds']['load_follow']} s; load average {os.getloadavg()[0]:.1f}"
    )
    if json_path:
        json_path.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
