"""Live ingest: `agent-loader serve` + `agent-loader load --follow` under concurrent clients.

    python bench/ingest_bench.py                       # two phases: saturation, then 25,000/s
    python bench/ingest_bench.py --rate 0              # saturation only
    python bench/ingest_bench.py --rate 30000 --seconds 30 --json report.json
    python bench/ingest_bench.py --heavy-only --heavy-seconds 30   # /healthz under attack
    python bench/ingest_bench.py --spans --rate 0 --rate 5000 --heavy-seconds 0   # OTLP spans
    python bench/ingest_bench.py --marketplace --rate 25000 --heavy-seconds 0   # to the live mart

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

The default runs both: saturation, then 25,000 events/s offered, then the heavy phase:

  --heavy-seconds S       /healthz probed every 20 ms (from a process of its own) first on
                          an idle server, then for S seconds while clients send the
                          heaviest requests `serve` allows, valid and hostile, back to back
                          (see HEAVY_KINDS): its p50 / p99 / max latency (target: p99
                          <= 100 ms), each kind's answers, and serve's peak memory.

For each rate phase it prints:

  events/s acknowledged   2xx-answered events per second over the timed window
                          (target >= 20,000 on a 2-core machine, clients included);
  answer latency          p50 / p99 of the POST round trip;
  ack-to-raw              p50 / p95 of the time from a 2xx answer to the events being visible
                          in raw.agent_events, for one request in 20 (target <= 2 s, at a
                          sustained rate of at least 20,000 events/s);
  backlog                 acknowledged events not yet in raw when the clients stop, and the
                          seconds until raw holds them all;
  reconciliation          every acknowledged event is in raw exactly once at the end.

With `--spans` the clients send OpenTelemetry spans instead: 50-span OTLP/HTTP protobuf
bodies (`application/x-protobuf`, as the SDKs' exporters send them) to `POST /v1/traces`,
each span an LLM call with the GenAI attributes and a span id of its own; the figures are
then spans acknowledged per second and ack-to-raw into raw.spans (target from issue 26:
>= 10,000 spans/s acknowledged, ack-to-raw p95 <= 2 s at a stated sustained rate).

With `--marketplace` the clients send marketplace invocations (`--agents`, 5 to a
publisher, `--durations` distinct whole milliseconds from 100 ms) and the figure is
ack-to-mart: from a probe batch's 2xx answer to its agent having a row in
`marts.operational_health_live` (built by dbt in the scratch database), read whole, back to
back, as `agent-loader alerts` reads it (target from issue 27: p95 <= 10 s at 25,000
events/s sustained). Before the phase, `--history-minutes` of rollup rows at the offered rate
are planted, so each read costs what it costs after an hour of that traffic.

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

from bench.live_mart_bench import build_views
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


def _marketplace_body(prefix: str, n: int, agents: int, durations: int, probe: bool) -> bytes:
    """A 50-event marketplace body stamped now: ids `PREFIX-0` ... `PREFIX-49`, agents and
    durations cycling through `agents` (5 to a publisher) and `durations` whole milliseconds,
    one in ten errored, three in ten `agent_invoked`; a probe's events all belong to agent
    `probe-PREFIX` of publisher `pub-probe`, so the watcher sees when the mart counts them."""
    stamp = datetime.now(timezone.utc).isoformat()
    events = []
    for i in range(50):
        agent = (n * 50 + i) % agents
        kind = (
            "agent_errored" if i % 10 == 0 else "agent_invoked" if i % 10 < 4 else "agent_completed"
        )
        properties: dict[str, object] = {"input_tokens": 10}
        if kind != "agent_invoked":
            properties.update(output_tokens=5, duration_ms=100 + (n * 7 + i * 13) % durations)
        events.append(
            {
                "id": f"{prefix}-{i}",
                "event_type": kind,
                "agent_id": f"probe-{prefix}" if probe else f"agent-{agent}",
                "publisher_id": "pub-probe" if probe else f"pub-{agent // 5}",
                "tenant_id": f"tenant-{i % 7}",
                "timestamp": stamp,
                "properties": properties,
            }
        )
    return json.dumps({"events": events}).encode()


_SPAN_ID_PREFIX = b"\xa7@@@@@"
"""Six bytes in the span template that each request replaces with a prefix of its own."""


def _span_template() -> bytes:
    """A 50-span OTLP protobuf body; span i's id is `_SPAN_ID_PREFIX` + i (two bytes)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    def attribute(key: str, value: object) -> KeyValue:
        if isinstance(value, str):
            return KeyValue(key=key, value=AnyValue(string_value=value))
        return KeyValue(key=key, value=AnyValue(int_value=int(value)))  # type: ignore[call-overload]

    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(
        [attribute("service.name", "support-agent"), attribute("tenant.id", "t-bench")]
    )
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "opentelemetry.instrumentation.openai_v2"
    scope_spans.scope.version = "2.1b0"
    end = time.time_ns()
    for i in range(50):
        span = scope_spans.spans.add()
        span.trace_id = bytes.fromhex("5b8efff798038103d269b633813fc60c")
        span.span_id = _SPAN_ID_PREFIX + i.to_bytes(2, "big")
        span.name = "chat gpt-4o-mini"
        span.kind = 3  # client
        span.start_time_unix_nano = end - 850_000_000
        span.end_time_unix_nano = end
        span.attributes.extend(
            [
                attribute("gen_ai.operation.name", "chat"),
                attribute("gen_ai.provider.name", "openai"),
                attribute("gen_ai.request.model", "gpt-4o-mini"),
                attribute("gen_ai.response.model", "gpt-4o-mini-2024-07-18"),
                attribute("gen_ai.usage.input_tokens", 1200 + i),
                attribute("gen_ai.usage.output_tokens", 240),
                attribute("gen_ai.conversation.id", "conv-bench"),
                attribute("user.id", f"user-{i % 7}"),
            ]
        )
    return request.SerializeToString()


def _span_prefix(worker: int, task: int, n: int) -> bytes:
    """A request's own six bytes: worker, task and request number (never all zero)."""
    return bytes([0xB0 | (worker & 0x0F), task & 0xFF]) + n.to_bytes(4, "big")


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
    spans: bool = False,
    marketplace: tuple[int, int] | None = None,
) -> None:
    """One client process: `tasks` concurrent posters; reports latencies and its CPU.

    With `rate` (events/s offered by all `total_tasks` together), each task posts one batch
    every `50 * total_tasks / rate` seconds on a fixed schedule, the tasks spread evenly over
    that interval; a task behind its schedule (an answer took longer) posts at once.

    Every SAMPLE_EVERY-th acknowledged batch goes to `live` at once (its last event id and
    when it was acknowledged), so the watcher times it from its acknowledgement. With
    `marketplace` (agents, durations) the bodies are marketplace events (`_marketplace_body`),
    every SAMPLE_EVERY-th of a task a probe, whose agent id goes to `live` once acknowledged.
    """
    import aiohttp

    template = _span_template() if spans else _event_template()

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
                kind = "application/x-protobuf" if spans else "application/json"
                headers = {"Content-Type": kind}
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
                    if spans:
                        span_prefix = _span_prefix(worker, task, n)
                        body = template.replace(_SPAN_ID_PREFIX, span_prefix)
                        sample = (span_prefix + (49).to_bytes(2, "big")).hex()
                    elif marketplace:
                        probe = n % SAMPLE_EVERY == 0
                        body = _marketplace_body(prefix, n, *marketplace, probe)
                        sample = f"probe-{prefix}" if probe else ""
                    else:
                        body = template.replace(b"@@", prefix.encode())
                        sample = f"{prefix}-49"
                    sent = time.perf_counter()
                    async with session.post(url, data=body, headers=headers) as reply:
                        await reply.read()
                        status = reply.status
                    latencies.append(time.perf_counter() - sent)
                    if status == 200:
                        acked += 50
                        if marketplace:
                            if sample:
                                live.put((sample, time.time()))
                        elif acked % (50 * SAMPLE_EVERY) == 0:
                            live.put((sample, time.time()))
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

    def __init__(self, dsn: str, live: multiprocessing.Queue, spans: bool = False) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.query = (
            "select span_id from raw.spans where span_id = any(%s)"
            if spans
            else "select event_id from raw.agent_events where event_id = any(%s)"
        )
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

    def _seen(self, sample_id: str, seen_at: float) -> None:
        """A pending sample is visible: its delay from its acknowledgement is recorded."""
        acknowledged_at = self.pending.pop(sample_id)
        self.delays.append(seen_at - acknowledged_at)
        self.timeline.append((acknowledged_at, seen_at - acknowledged_at))

    def _look(self, cur: psycopg2.extensions.cursor) -> None:
        """One poll: the pending samples raw now holds are seen."""
        cur.execute(self.query, (list(self.pending),))
        seen_at = time.time()
        for (event_id,) in cur.fetchall():
            self._seen(event_id, seen_at)

    def run(self) -> None:
        """Looks every 20 ms while samples are pending, until done and none is left."""
        conn = psycopg2.connect(self.dsn)
        conn.autocommit = True
        while True:
            finishing = self.done.is_set()
            self._take_new_samples()
            if self.pending:
                with conn.cursor() as cur:
                    self._look(cur)
            if finishing and not self.pending:
                break
            time.sleep(0.02)
        conn.close()


class MartWatcher(RawWatcher):
    """Reads the whole of marts.operational_health_live (every window, as `agent-loader
    alerts` does) back to back while probes are pending; a probe is visible once the view
    has a row for its agent, and its delay is the time from its acknowledgement to the end
    of that read (an upper bound, by at most one read). Records each read's duration."""

    def __init__(self, dsn: str, live: multiprocessing.Queue) -> None:
        super().__init__(dsn, live)
        self.reads: list[float] = []

    def _look(self, cur: psycopg2.extensions.cursor) -> None:
        """One whole read of the view: the pending probes whose agent it has are seen."""
        started = time.time()
        cur.execute("select agent_id from marts.operational_health_live")
        present = {agent_id for (agent_id,) in cur.fetchall()}
        seen_at = time.time()
        self.reads.append(seen_at - started)
        for agent_id in [agent for agent in self.pending if agent in present]:
            self._seen(agent_id, seen_at)


# An hour (or `minutes`) of history before the phase, as the rollup triggers would have kept
# it from `_marketplace_body`'s traffic at `rate`: each 1-minute bucket holds, per outcome,
# as many (agent, duration) combinations as that traffic fills (all of them, or one per event
# when there are more combinations than events), each with its share of the events, summed
# into the rollup's rows (agent, outcome, duration bin). Raw itself is not planted: the live
# view reads the rollup only.
HISTORY = """
insert into raw.marketplace_live_rollup
select
    bucket_at,
    'pub-' || agent / 5,
    'agent-' || agent,
    is_success,
    raw.marketplace_duration_bin(is_success, duration_ms),
    sum(events),
    sum(duration_ms * events),
    min(duration_ms),
    max(duration_ms),
    bucket_at + interval '9 seconds'
from (
    select
        buckets.bucket_at,
        k.k %% %(agents)s as agent,
        kind.is_success,
        case when kind.is_success then 100 + k.k / %(agents)s %% %(durations)s end as duration_ms,
        greatest(round(kind.events / kind.combinations), 1) as events
    from generate_series(
        raw.marketplace_live_bucket(now() - make_interval(mins => %(minutes)s)),
        raw.marketplace_live_bucket(now()) - interval '1 minute',
        interval '1 minute'
    ) as buckets (bucket_at)
    cross join (
        values
            (true, 0.6 * %(rate)s * 60, least(%(combinations)s, 0.6 * %(rate)s * 60)),
            (false, 0.1 * %(rate)s * 60, least(%(agents)s, 0.1 * %(rate)s * 60))
    ) as kind (is_success, events, combinations)
    cross join lateral generate_series(0, cast(kind.combinations as integer) - 1) as k (k)
) as planted
group by 1, 2, 3, 4, 5
"""


def plant_history(dsn: str, rate: float, agents: int, durations: int, minutes: int) -> int:
    """HISTORY in the scratch database; the rows planted."""
    params = {"rate": rate, "agents": agents, "durations": durations, "minutes": minutes}
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(HISTORY, {**params, "combinations": agents * durations})
        planted = cur.rowcount
        cur.execute("analyze raw.marketplace_live_rollup")
    return planted


def run_phase(
    server_dsn: str,
    rate: float,
    clients: int,
    processes: int,
    seconds: float,
    commit_interval: float,
    connections: int,
    spans: bool = False,
    marketplace: tuple[int, int] | None = None,
    history_minutes: int = 0,
) -> dict:
    """One phase: fresh servers and database, clients offering `rate` events/s (0: flat out);
    `spans`: OTLP protobuf spans to /v1/traces, counted in raw.spans; `marketplace` (agents,
    durations): marketplace events, timed to marts.operational_health_live (built by dbt in
    the scratch database, with `history_minutes` of rollup history planted first)."""
    table, key = ("raw.spans", "span_id") if spans else ("raw.agent_events", "event_id")
    if marketplace:
        table, key = "raw.marketplace_events", "id"
    db = Scratch(server_dsn)
    tmp = Path(tempfile.mkdtemp(prefix="aa-ingest-"))
    history_rows = 0
    if marketplace:
        build_views(db.dsn, tmp / "dbt")
        if history_minutes:
            history_rows = plant_history(db.dsn, rate, *marketplace, history_minutes)
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
    watcher = MartWatcher(db.dsn, live) if marketplace else RawWatcher(db.dsn, live, spans)
    watcher.start()
    try:
        out: multiprocessing.Queue = multiprocessing.Queue()
        start_at = time.time() + 2.0
        per_process = [clients // processes + (i < clients % processes) for i in range(processes)]
        workers = [
            multiprocessing.Process(
                target=_client_process,
                args=(
                    url + ("/v1/traces" if spans else "/v1/events"),
                    w,
                    n,
                    sum(per_process[:w]),
                    clients,
                    rate,
                    seconds,
                    start_at,
                    out,
                    live,
                    spans,
                    marketplace,
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
        serve_pids = [serve.pid, *_descendants(serve.pid)]  # its check workers too
        pids = {"serve": serve_pids, "load_follow": [follow.pid], "postgres": backends}
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
                cur.execute(f"select count(*) from {table}")
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
            cur.execute(f"select count(*), count(distinct {key}) from {table}")
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
    reads = sorted(watcher.reads) if isinstance(watcher, MartWatcher) else []
    return {
        "phase": (f"sustained {rate:g} events/s offered" if rate else "saturation")
        + (" (OTLP spans)" if spans else "")
        + (" (marketplace, to operational_health_live)" if marketplace else ""),
        "records": "spans" if spans else "events",
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
        **(
            {
                "agents": marketplace[0],
                "durations": marketplace[1],
                "history_minutes": history_minutes,
                "history_rollup_rows": history_rows,
                "mart_reads": len(reads),
                "mart_read_p50_s": round(_percentile(reads, 50), 3) if reads else None,
                "mart_read_max_s": round(reads[-1], 3) if reads else None,
            }
            if marketplace
            else {}
        ),
    }


def _summary(report: dict) -> str:
    per_event = report["cpu_us_per_event"]
    rate = report["offered_events_per_second"]
    if rate:
        heading = f"sustained: {rate:,.0f} events/s offered"
        latency_note = (
            "(target <= 2 s at a stated sustained rate)"
            if report["records"] == "spans"
            else "(target <= 2 s at >= 20,000 events/s sustained)"
        )
        if not report["rate_sustained"]:
            heading += (
                " -- NOT SUSTAINED: fewer acknowledged than offered, so this latency is not"
                " the latency at that rate"
            )
    else:
        heading = "saturation: clients post flat out"
        latency_note = "(backlog: grows with the run's length, not a latency)"
    by_second = list(report["ack_to_raw_by_second"].values())
    mart = ""
    if "agents" in report:
        latency_note = "(ack-to-mart: to marts.operational_health_live; target p95 <= 10 s)"
        mart = (
            f"mart          {report['mart_reads']} whole reads, p50 {report['mart_read_p50_s']} s,"
            f" max {report['mart_read_max_s']} s; {report['agents']} agents x"
            f" {report['durations']} durations; {report['history_rollup_rows']:,} rollup rows"
            f" of history ({report['history_minutes']} min)\n"
        )
    return (
        f"--- {heading}\n"
        f"acknowledged  {report['events_per_second']:>9,} {report['records']}/s"
        f"   (target >= {'10,000' if report['records'] == 'spans' else '20,000'})\n"
        f"answer        p50 {report['answer_p50_ms']} ms, p99 {report['answer_p99_ms']} ms\n"
        f"ack-to-raw    p50 {report['ack_to_raw_p50_s']} s, p95 {report['ack_to_raw_p95_s']} s"
        f" over {report['ack_to_raw_samples']} samples   {latency_note}\n"
        f"              worst per second of the run: {by_second[:3]} ... {by_second[-3:]}\n"
        f"{mart}"
        f"backlog       {report['backlog_events_at_end']:,} events not in raw when the"
        f" clients stopped; drained in {report['drain_seconds']} s\n"
        f"raw           {report['events_in_raw']:,} events from {report['batch_files']} files;"
        f" acknowledged {report['events_acknowledged']:,};"
        f" {'reconciled' if report['reconciled'] else 'NOT RECONCILED'}\n"
        f"cpu µs/event  {per_event['serve']} serve (its workers included),"
        f" {per_event['load_follow']} load --follow,"
        f" {per_event['postgres']} its PostgreSQL backends, {per_event['clients']} clients"
        f" (timed window and drain)\n"
        f"machine       {report['machine_busy_cores']} of {report['cpus']} cores busy,"
        f" {report['others_busy_cores']} by other processes; load average"
        f" {report['load_average_1m']:.2f}"
    )


# --- the heavy phase: /healthz while the heaviest allowed requests arrive -----------------


def _padded_event(i: int, pad: int, **changes: object) -> dict:
    """A valid conversation event whose text is `pad` characters long."""
    event = {
        "event_id": f"heavy-{i}",
        "conversation_id": f"conv-{i % 97}",
        "session_id": "sess-1",
        "event_type": "message",
        "timestamp": "2026-01-05T10:00:00.123456",
        "agent_name": "support-agent",
        "user_id": f"user-{i % 7}",
        "payload": {"text": "x" * pad, "role": "user"},
        "metadata": {"model": "model-1", "total_tokens": 120, "latency_ms": 340.5},
    }
    event.update(changes)
    return event


def _heavy_bodies() -> dict[str, tuple[bytes, dict[str, str]]]:
    """The heaviest requests `serve` allows, by kind: (body, headers).

    Valid ones are as large as the limits let them be (MAX_RECORDS_PER_REQUEST records in
    just under MAX_DECOMPRESSED_BYTES); hostile ones are the cheapest to send for the most
    work asked of the server.
    """
    import gzip

    from loader.limits import MAX_DECOMPRESSED_BYTES, MAX_RECORDS_PER_REQUEST, MAX_REQUEST_BYTES

    records = MAX_RECORDS_PER_REQUEST
    empty = json.dumps({"events": [_padded_event(i, 0) for i in range(records)]})
    pad = (MAX_DECOMPRESSED_BYTES - 4096 - len(empty)) // records
    valid = json.dumps({"events": [_padded_event(i, pad) for i in range(records)]}).encode()
    bad = "\n".join(
        json.dumps(_padded_event(i, pad, event_type="not-a-type", timestamp="yesterday"))
        for i in range(records)
    ).encode()
    member = gzip.compress(b"")
    as_json = {"Content-Type": "application/json"}
    as_ndjson = {"Content-Type": "application/x-ndjson"}
    gzipped = {"Content-Encoding": "gzip"}
    return {
        "valid, 10k records in 16 MiB": (valid, as_json),
        "valid, gzip": (gzip.compress(valid, 1), {**as_json, **gzipped}),
        "all quarantined, 10k records": (bad, as_ndjson),
        "8M one-byte records": (b"1\n" * (MAX_DECOMPRESSED_BYTES // 2), as_ndjson),
        "empty gzip members": (
            member * (MAX_REQUEST_BYTES // len(member)),
            {**as_json, **gzipped},
        ),
    }


def _heavy_process(url: str, tasks: int, seconds: float, start: multiprocessing.Queue, out) -> None:
    """`tasks` clients posting the heavy kinds back to back, each starting at another kind.

    The bodies are built first; then `out` gets "ready" and `start` the time to begin."""
    import aiohttp

    bodies = _heavy_bodies()
    kinds = list(bodies)
    out.put("ready")
    start_at = start.get()

    async def run() -> dict:
        seen: dict[str, dict] = {
            kind: {"requests": 0, "statuses": {}, "seconds": [], "answer_bytes": 0}
            for kind in kinds
        }
        timeout = aiohttp.ClientTimeout(total=300)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while time.time() < start_at:
                await asyncio.sleep(0.01)

            async def poster(task: int) -> None:
                n = task
                while time.time() < start_at + seconds:
                    kind = kinds[n % len(kinds)]
                    n += 1
                    body, headers = bodies[kind]
                    sent = time.perf_counter()
                    try:
                        async with session.post(url, data=body, headers=headers) as reply:
                            answer = await reply.read()
                            status = str(reply.status)
                    except aiohttp.ClientError as error:
                        answer, status = b"", type(error).__name__
                    record = seen[kind]
                    record["requests"] += 1
                    record["statuses"][status] = record["statuses"].get(status, 0) + 1
                    record["seconds"].append(time.perf_counter() - sent)
                    record["answer_bytes"] = max(record["answer_bytes"], len(answer))

            await asyncio.gather(*(poster(task) for task in range(tasks)))
        return seen

    out.put(asyncio.run(run()))


def _probe_process(url: str, seconds: float, start_at: float, out) -> None:
    """GET /healthz every 20 ms on one keep-alive connection; the latency of each."""
    import http.client
    from urllib.parse import urlsplit

    host, port = urlsplit(url).hostname, urlsplit(url).port
    connection = http.client.HTTPConnection(host, port, timeout=60)
    latencies: list[float] = []
    while time.time() < start_at:
        time.sleep(0.005)
    due = time.monotonic()
    while time.time() < start_at + seconds:
        sent = time.perf_counter()
        try:
            connection.request("GET", "/healthz")
            connection.getresponse().read()
        except (OSError, http.client.HTTPException):
            connection.close()
            connection = http.client.HTTPConnection(host, port, timeout=60)
            continue
        latencies.append(time.perf_counter() - sent)
        due += 0.02
        time.sleep(max(0.0, due - time.monotonic()))
    connection.close()
    out.put(latencies)


def _probe(
    url: str, seconds: float, start_at: float
) -> tuple[multiprocessing.Process, multiprocessing.Queue]:
    out: multiprocessing.Queue = multiprocessing.Queue()
    process = multiprocessing.Process(target=_probe_process, args=(url, seconds, start_at, out))
    process.start()
    return process, out


def _peak_memory_mib(pid: int) -> float:
    """A process's peak resident memory (VmHWM, Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _descendants(pid: int) -> list[int]:
    """The processes `pid` started, and theirs (serve's forkserver and check workers)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += [int(child), *_descendants(int(child))]
    return found


def _latency_summary(latencies: list[float]) -> dict:
    ordered = sorted(latencies)
    return {
        "samples": len(ordered),
        "p50_ms": round(1000 * _percentile(ordered, 50), 1),
        "p99_ms": round(1000 * _percentile(ordered, 99), 1),
        "max_ms": round(1000 * ordered[-1], 1),
    }


def run_heavy_phase(seconds: float, tasks: int) -> dict:
    """/healthz on an idle server, then while `tasks` clients send the heavy kinds."""
    tmp = Path(tempfile.mkdtemp(prefix="aa-heavy-"))
    landing = tmp / "landing"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    serve = subprocess.Popen(
        [sys.executable, "-m", "loader", "serve", "--landing", str(landing), "--port", str(port)],
        cwd=REPO,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_healthy(url)
        quiet, quiet_out = _probe(url, 3.0, time.time() + 0.5)
        quiet_latencies = quiet_out.get()
        quiet.join()
        out: multiprocessing.Queue = multiprocessing.Queue()
        start: multiprocessing.Queue = multiprocessing.Queue()
        senders = multiprocessing.Process(
            target=_heavy_process, args=(url + "/v1/events", tasks, seconds, start, out)
        )
        senders.start()
        assert out.get(timeout=300) == "ready"  # the bodies are built
        start_at = time.time() + 1.0
        start.put(start_at)
        click.echo(
            f"/healthz while {tasks} clients send the heaviest allowed requests"
            f" for {seconds:g} s ...",
            err=True,
        )
        probe, probe_out = _probe(url, seconds, start_at)
        while senders.is_alive() and out.empty():  # keep the landing folder from filling up
            for entry in os.scandir(landing):
                if not entry.name.startswith("."):
                    os.unlink(entry.path)
            time.sleep(0.5)
        latencies = probe_out.get()
        seen = out.get()
        probe.join()
        senders.join()
        peak = _peak_memory_mib(serve.pid)
        workers_peak = max((_peak_memory_mib(pid) for pid in _descendants(serve.pid)), default=0)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(60)
        shutil.rmtree(tmp, ignore_errors=True)
    kinds = {
        kind: {
            "requests": record["requests"],
            "statuses": record["statuses"],
            "answer_p50_s": round(_percentile(sorted(record["seconds"]), 50), 2)
            if record["seconds"]
            else None,
            "largest_answer_bytes": record["answer_bytes"],
        }
        for kind, record in seen.items()
    }
    return {
        "phase": "healthz under the heaviest allowed requests",
        "finished_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": seconds,
        "heavy_clients": tasks,
        "healthz_idle": _latency_summary(quiet_latencies),
        "healthz": _latency_summary(latencies),
        "healthz_p99_within_100_ms": _latency_summary(latencies)["p99_ms"] <= 100,
        "requests": kinds,
        "serve_peak_memory_mib": peak,
        "worker_peak_memory_mib": workers_peak,
        "cpus": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0],
    }


def _heavy_summary(report: dict) -> str:
    idle, busy = report["healthz_idle"], report["healthz"]
    lines = [
        "--- /healthz while the heaviest allowed requests arrive",
        f"/healthz      p50 {busy['p50_ms']} ms, p99 {busy['p99_ms']} ms, max {busy['max_ms']} ms"
        f" over {busy['samples']} probes   (target: p99 <= 100 ms;"
        f" idle: p50 {idle['p50_ms']}, p99 {idle['p99_ms']} ms)",
    ]
    for kind, record in report["requests"].items():
        statuses = ", ".join(f"{code} x{count}" for code, count in record["statuses"].items())
        lines.append(
            f"  {kind:<30} {record['requests']:>3} requests ({statuses}),"
            f" answered in p50 {record['answer_p50_s']} s,"
            f" largest answer {record['largest_answer_bytes']:,} bytes"
        )
    lines.append(
        f"serve         peak memory {report['serve_peak_memory_mib']} MiB, largest worker"
        f" {report['worker_peak_memory_mib']} MiB;"
        f" load average {report['load_average_1m']:.2f} on {report['cpus']} cores"
    )
    return "\n".join(lines)


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
@click.option(
    "--heavy-seconds",
    default=20.0,
    show_default=True,
    help="Length of the heavy phase (/healthz under the heaviest requests); 0: skip it.",
)
@click.option("--heavy-clients", default=2, show_default=True, help="Heavy senders at once.")
@click.option("--heavy-only", is_flag=True, help="Run the heavy phase alone (no --rate phases).")
@click.option(
    "--spans",
    is_flag=True,
    help="Send OTLP protobuf spans to /v1/traces (50 a request) instead of events.",
)
@click.option(
    "--marketplace",
    is_flag=True,
    help="Send marketplace invocations and time them to marts.operational_health_live.",
)
@click.option("--agents", default=200, show_default=True, help="--marketplace: agents sending.")
@click.option(
    "--durations", default=50, show_default=True, help="--marketplace: distinct durations (ms)."
)
@click.option(
    "--history-minutes",
    default=60,
    show_default=True,
    help="--marketplace: minutes of rollup history planted at the offered rate before the phase.",
)
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write figures here.")
def main(
    rates: tuple[float, ...],
    clients: int,
    processes: int,
    seconds: float,
    commit_interval: float,
    connections: int,
    heavy_seconds: float,
    heavy_clients: int,
    heavy_only: bool,
    spans: bool,
    marketplace: bool,
    agents: int,
    durations: int,
    history_minutes: int,
    json_path: Path | None,
) -> None:
    """Acknowledged events/s, answer latency and ack-to-raw latency of the live path."""
    server_dsn = _server_dsn()
    phases = []
    for rate in () if heavy_only else rates:
        report = run_phase(
            server_dsn,
            rate,
            clients,
            processes,
            seconds,
            commit_interval,
            connections,
            spans,
            (agents, durations) if marketplace else None,
            history_minutes,
        )
        click.echo(_summary(report))
        phases.append(report)
    if heavy_seconds:
        report = run_heavy_phase(heavy_seconds, heavy_clients)
        click.echo(_heavy_summary(report))
        phases.append(report)
    if json_path:
        json_path.write_text(json.dumps({"phases": phases}, indent=2))


if __name__ == "__main__":
    main()
