"""SIGTERM finishes what is in flight and exits 0; SIGKILL loses no acknowledged event."""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.error
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.conftest import Database, run_loader
from tests.serve.conftest import agent_event, marketplace_event, request


def test_sigterm_answers_in_flight_requests_then_exits_0(start_serve) -> None:
    # A long group-commit interval keeps requests in flight when SIGTERM arrives: the first
    # batch is written at once, the others wait 1.5 s for the next file.
    server = start_serve("--commit-interval", "1.5")
    server.post({"events": [agent_event("term-first")]})
    bodies = [{"events": [agent_event(f"term-{i}-{j}") for j in range(10)]} for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        replies = [pool.submit(server.post, body) for body in bodies]
        time.sleep(0.5)
        server.signal(signal.SIGTERM)
        statuses = [reply.result().status for reply in replies]
    assert statuses == [200] * 6
    assert server.wait(30) == 0
    written = [json.loads(line)["event_id"] for f in server.batch_files() for line in f.open()]
    expected = ["term-first"] + [e["event_id"] for b in bodies for e in b["events"]]
    assert sorted(written) == sorted(expected)
    try:
        request(server.url + "/healthz", timeout=2)
        raise AssertionError("the server still answers after SIGTERM")
    except (urllib.error.URLError, ConnectionError):
        pass


def _client(url_of, sent: list[str], acked: list[str], stop: threading.Event, n: int) -> None:
    """Posts 20-event batches, retrying each until a 2xx, as a collector does."""
    batch = 0
    while not stop.is_set():
        batch += 1
        events = [
            agent_event(f"kill-{n}-{batch}-{i}")
            if i % 2
            else marketplace_event(f"kill-{n}-{batch}-{i}")
            for i in range(20)
        ]
        ids = [event.get("event_id") or event["id"] for event in events]
        sent.extend(ids)
        body = json.dumps({"events": events}).encode()
        while True:
            try:
                reply = request(url_of() + "/v1/events", body, timeout=5)
                if reply.status == 200:
                    acked.extend(ids)
                    break
            except OSError:
                pass
            time.sleep(0.05)


def test_sigkill_under_concurrent_clients_loses_no_acknowledged_event(
    start_serve, tmp_path: Path, db: Database
) -> None:
    landing = tmp_path / "landing"
    server = start_serve(landing=landing)
    current = {"server": server}
    sent: list[str] = []
    acked: list[str] = []
    stop = threading.Event()
    clients = [
        threading.Thread(target=_client, args=(lambda: current["server"].url, sent, acked, stop, n))
        for n in range(6)
    ]
    for thread in clients:
        thread.start()
    time.sleep(1.5)
    acked_before_kill = len(acked)
    server.signal(signal.SIGKILL)
    server.wait()
    time.sleep(0.3)
    current["server"] = start_serve(landing=landing, port=server.port)
    time.sleep(1.5)
    stop.set()
    for thread in clients:
        thread.join(30)

    assert acked_before_kill > 0
    assert len(acked) > acked_before_kill  # the clients went on after the restart
    # A `.part` file the kill left behind was never acknowledged; the restart removed it.
    assert [p.name for p in landing.iterdir() if p.name.endswith(".part")] == []
    run_loader(db, "load", str(landing))
    rows = db.query(
        "select event_id from raw.agent_events union all select id from raw.marketplace_events"
    )
    in_raw = [row[0] for row in rows]
    assert len(in_raw) == len(set(in_raw))  # once each
    assert set(acked) <= set(in_raw)  # every acknowledged event
    assert set(in_raw) <= set(sent)  # nothing invented
    assert db.scalar("select count(*) from raw.quarantine") == 0
    read, loaded, duplicates = db.query(
        "select sum(records_read), sum(loaded), sum(duplicates) from raw.load_batches"
    )[0]
    assert read == loaded + duplicates
    assert loaded == len(in_raw)
