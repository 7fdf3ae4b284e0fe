"""POST /v1/events: what it accepts, what it refuses as a whole, and what the answer says.

Every refusal is checked to leave nothing in the landing folder; every acceptance to leave
exactly the records sent, and the predicted quarantine to be what `load` then quarantines.
"""

from __future__ import annotations

import gzip
import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Database, run_loader
from tests.serve.conftest import (
    ServeProcess,
    agent_event,
    marketplace_event,
    request,
)


@pytest.fixture(scope="module")
def ingest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    landing = tmp_path_factory.mktemp("landing")
    process = ServeProcess(
        landing, "--max-body-bytes", "65536", "--body-timeout", "1", "--max-record-bytes", "2000"
    )
    yield process
    process.stop()


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _new_files(ingest: ServeProcess, before: list[Path]) -> list[Path]:
    return [path for path in ingest.batch_files() if path not in before]


# --- refused as a whole ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b'"events"', 'expected {"events": [...]}'),
        (b'{"events": {"a": 1}}', "must be a JSON array"),
        (b'{"events": [], "extra": 1}', 'expected {"events": [...]}'),
        (b"\xff\xfe[]", "not valid UTF-8"),
    ],
)
def test_body_that_is_not_an_accepted_shape_gets_400(
    ingest: ServeProcess, body: bytes, fragment: str
) -> None:
    before = ingest.batch_files()
    reply = ingest.post(body)
    assert reply.status == 400
    assert fragment in reply.json["error"]
    assert _new_files(ingest, before) == []


def test_ndjson_with_a_broken_line_gets_400_naming_the_line(ingest: ServeProcess) -> None:
    body = json.dumps(agent_event("nd-ok")).encode() + b"\n{broken\n"
    reply = ingest.post(body, content_type="application/x-ndjson")
    assert reply.status == 400
    assert reply.json["error"].startswith("line 2 is not valid JSON")


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", None])
def test_other_content_types_get_415(ingest: ServeProcess, content_type: str | None) -> None:
    reply = ingest.post({"events": [agent_event("ct-1")]}, content_type=content_type)
    assert reply.status == 415


def test_unknown_content_encoding_gets_415(ingest: ServeProcess) -> None:
    reply = request(
        ingest.url + "/v1/events",
        b'{"events": []}',
        headers={"Content-Encoding": "zstd"},
    )
    assert reply.status == 415
    assert "zstd" in reply.json["error"]


def test_body_over_the_limit_gets_413(ingest: ServeProcess) -> None:
    events = [agent_event(f"big-{i}", payload={"text": "x" * 1000}) for i in range(80)]
    body = json.dumps({"events": events}).encode()
    assert len(body) > 65536
    before = ingest.batch_files()
    assert ingest.post(body).status == 413
    assert _new_files(ingest, before) == []


def test_gzip_bomb_gets_413_from_its_decoded_size(ingest: ServeProcess) -> None:
    # 2 MB of spaces inside a valid document compresses to a few kB: the limit is on the
    # decoded bytes, so this is refused although the request itself is small.
    body = b'{"events": [' + b" " * 2_000_000 + b"]}"
    assert len(gzip.compress(body)) < 65536
    assert ingest.post_gzip(body).status == 413


def test_corrupt_gzip_gets_400(ingest: ServeProcess) -> None:
    reply = request(
        ingest.url + "/v1/events",
        b"\x1f\x8b\x08\x00garbage-not-deflate",
        headers={"Content-Encoding": "gzip"},
    )
    assert reply.status == 400


def test_slow_client_gets_408_after_the_body_timeout(ingest: ServeProcess) -> None:
    with socket.create_connection(("127.0.0.1", ingest.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"events": ['
        )
        started = time.monotonic()
        answer = sock.recv(4096)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert 0.5 < waited < 5


def test_client_stuck_in_its_headers_is_disconnected(ingest: ServeProcess) -> None:
    with socket.create_connection(("127.0.0.1", ingest.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\n")  # and never the rest
        started = time.monotonic()
        assert sock.recv(4096) == b""  # closed by the server
        assert time.monotonic() - started < 5


# --- accepted ----------------------------------------------------------------------------


def test_events_document_is_written_durably_with_every_record(ingest: ServeProcess) -> None:
    events = [agent_event("doc-1"), marketplace_event("doc-2")]
    before = ingest.batch_files()
    reply = ingest.post({"events": events})
    assert reply.status == 200
    assert reply.json["records"] == 2
    assert reply.json["accepted"] == 2
    assert reply.json["quarantined"] == []
    (written,) = _new_files(ingest, before)
    assert written.name == reply.json["file"]
    assert _records(written) == events


def test_ndjson_gzip_and_json_array_are_accepted(ingest: ServeProcess) -> None:
    ndjson = b"\n".join(json.dumps(agent_event(f"nd-{i}")).encode() for i in range(3)) + b"\n\n"
    reply = ingest.post(ndjson, content_type="application/x-ndjson")
    assert (reply.status, reply.json["records"]) == (200, 3)
    reply = ingest.post_gzip(json.dumps({"events": [agent_event("gz-1")]}).encode())
    assert (reply.status, reply.json["records"]) == (200, 1)
    reply = ingest.post([marketplace_event("arr-1"), marketplace_event("arr-2")])
    assert (reply.status, reply.json["records"]) == (200, 2)


def test_empty_batch_is_answered_and_writes_nothing(ingest: ServeProcess) -> None:
    before = ingest.batch_files()
    reply = ingest.post({"events": []})
    assert reply.status == 200
    assert reply.json["records"] == 0
    assert _new_files(ingest, before) == []


def test_answer_names_the_records_load_will_quarantine(
    ingest: ServeProcess, db: Database, tmp_path: Path
) -> None:
    events = [
        agent_event("q-ok-1"),
        agent_event("q-bad-type", event_type="teleport"),
        "a string",
        marketplace_event("q-bad-rating", properties={"rating": 9}),
        {"no_id": True},
        agent_event("q-nul", agent_name="a\u0000b"),
        marketplace_event("q-ok-2"),
        agent_event("q-big", payload={"text": "x" * 3000}),
    ]
    reply = ingest.post({"events": events})
    assert reply.status == 200
    answer = reply.json
    assert answer["records"] == 8
    assert answer["accepted"] == 2
    assert [item["index"] for item in answer["quarantined"]] == [1, 2, 3, 4, 5, 7]

    landing = tmp_path / "one"
    landing.mkdir()
    (landing / answer["file"]).write_bytes((ingest.landing / answer["file"]).read_bytes())
    run_loader(db, "load", "--max-record-bytes", "2000", str(landing))
    rows = db.query("select position, reason from raw.quarantine order by position")
    first = answer["first_line"]
    expected = [(first + item["index"], item["reason"]) for item in answer["quarantined"]]
    # The file holds only this request (written alone), so positions are lines 1..8.
    assert rows == expected
    assert db.scalar("select count(*) from raw.agent_events") == 1
    assert db.scalar("select count(*) from raw.marketplace_events") == 1


# --- health and metrics ------------------------------------------------------------------


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def test_metrics_count_requests_and_events(tmp_path: Path) -> None:
    ingest = ServeProcess(tmp_path / "landing")
    try:
        ingest.post({"events": [agent_event("m-1"), agent_event("m-2", event_type="x")]})
        ingest.post(b"nope")
        text = request(ingest.url + "/metrics").body.decode()
        assert _metric(text, "agent_loader_events_accepted_total") == 1
        assert _metric(text, "agent_loader_events_quarantined_total") == 1
        assert _metric(text, 'agent_loader_requests_total{code="200",path="/v1/events"}') == 1
        assert _metric(text, 'agent_loader_requests_total{code="400",path="/v1/events"}') == 1
        assert _metric(text, "agent_loader_fsync_seconds_count") == 1
        size = sum(path.stat().st_size for path in ingest.batch_files())
        assert _metric(text, "agent_loader_spool_bytes") == size
        health = request(ingest.url + "/healthz")
        assert health.status == 200
        assert health.json["status"] == "ok"
    finally:
        ingest.stop()
