"""Issue 26's OTLP claims that test_otlp.py leaves implicit, each tried on its own.

- exactly once per (trace id, span id): the key is the pair, not the span id alone;
- acknowledged only once on disk: when the 200 arrives the span is already in the landing
  file, written with one fsync, as for events;
- the same `load --follow` path into raw as events: spans posted to a running `serve` reach
  raw.spans through a running follower, with no cron `load`.
"""

from __future__ import annotations

import gzip
import json
import re
import signal
import time
from pathlib import Path
from typing import Any

from tests.conftest import Database, run_loader
from tests.serve.conftest import request, start_follow

TRACE_A = "a" * 32
TRACE_B = "b" * 32
SPAN = "00000000000000aa"


def _span(trace_id: str, span_id: str, name: str = "chat gpt-4o") -> dict[str, Any]:
    end = time.time_ns()
    return {
        "traceId": trace_id,
        "spanId": span_id,
        "name": name,
        "kind": 3,
        "startTimeUnixNano": str(end - 1_000_000),
        "endTimeUnixNano": str(end),
        "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}],
    }


def _request(*spans: dict[str, Any]) -> dict[str, Any]:
    return {"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": list(spans)}]}]}


def test_one_span_id_in_two_traces_is_two_spans_and_a_repeat_of_a_pair_is_one(
    tmp_path: Path, db: Database
) -> None:
    # the same span id in traces A and B, and A's span again in the same request
    body = _request(_span(TRACE_A, SPAN), _span(TRACE_B, SPAN), _span(TRACE_A, SPAN))
    path = tmp_path / "traces.json.gz"
    path.write_bytes(gzip.compress(json.dumps(body).encode() + b"\n"))
    result = json.loads(run_loader(db, "load", str(path), "--json").stdout)[0]
    assert (result["records_read"], result["loaded"], result["duplicates"]) == (3, 2, 1)
    assert db.query("select trace_id, span_id from raw.spans order by trace_id") == [
        (TRACE_A, SPAN),
        (TRACE_B, SPAN),
    ]


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def test_a_200_for_spans_means_they_are_already_on_disk(start_serve) -> None:
    server = start_serve()
    body = json.dumps(_request(_span(TRACE_A, SPAN, name="durable"))).encode()
    reply = request(server.url + "/v1/traces", body, "application/json")
    assert reply.status == 200, reply.body
    # read at once after the answer: the file is complete, not still being written
    [batch] = server.batch_files()
    text = batch.read_bytes()
    if batch.name.endswith(".gz"):
        text = gzip.decompress(text)
    assert b'"durable"' in text
    metrics = request(server.url + "/metrics").body.decode()
    assert _metric(metrics, "agent_loader_fsync_seconds_count") == 1
    assert _metric(metrics, 'agent_loader_requests_total{code="200",path="/v1/traces"}') == 1


def test_spans_posted_to_serve_reach_raw_through_load_follow(
    start_serve, tmp_path: Path, db: Database
) -> None:
    server = start_serve()
    follower = start_follow(db, str(server.landing), "--poll-interval", "0.1")
    try:
        spans = [_span(TRACE_A, f"{n:016x}") for n in range(1, 6)]
        reply = request(server.url + "/v1/traces", json.dumps(_request(*spans)).encode())
        assert reply.status == 200 and reply.json == {}
        deadline = time.monotonic() + 30
        while db.scalar("select count(*) from raw.spans") != 5:
            assert time.monotonic() < deadline, "spans not in raw within 30 s"
            time.sleep(0.1)
    finally:
        follower.send_signal(signal.SIGTERM)
        _, errors = follower.communicate(timeout=60)
    assert follower.returncode == 0, errors
    assert {row[0] for row in db.query("select span_id from raw.spans")} == {
        f"{n:016x}" for n in range(1, 6)
    }
    assert db.scalar("select sum(spans_loaded) from raw.load_batches") == 5
